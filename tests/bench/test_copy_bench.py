"""``python -m ml bench copy`` end to end on the tiny shop with a cheap model: the JSON it writes
holds what the docs report, and its counts add up."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def test_bench_copy_writes_pass_rates_per_decoding_arm(tmp_path, capsys):
    from ml.cli import main

    out = tmp_path / "bench"
    args = ["bench", "copy", "--size", "tiny", "--steps", "30", "--products", "6", "--attempts", "2", "--out", str(out)]
    assert main(args) == 0
    payload = json.loads((out / "copy.json").read_text())
    assert payload["products"] == 6 and payload["attempts"] == 2 and payload["train_seconds"] > 0
    assert set(payload["arms"]) == {"free", "constrained"}
    for arm in payload["arms"].values():
        assert arm["candidates"] == 12 and 0 <= arm["passed"] <= 12
        assert arm["pass_rate"] == round(arm["passed"] / 12, 4)
        assert sum(arm["reasons"].values()) >= 12 - arm["passed"]  # every failure names at least one rule
        assert 0 <= arm["template_share"] <= 1
    assert (out / "copy.png").read_bytes().startswith(b"\x89PNG")
    assert "constrained" in capsys.readouterr().out
