"""Shard parts on disk (``ml.publish.shards``): whole or absent, and swept when abandoned."""

from __future__ import annotations

import os
import time

import pandas as pd
import pytest

from ml.publish.shards import Shard, read_parts, run_folder, sweep_stale_parts, write_part

pytestmark = pytest.mark.unit


def _age(path, hours: float) -> None:
    then = time.time() - hours * 3600
    for p in [path, *path.rglob("*")]:
        os.utime(p, (then, then))


def test_abandoned_runs_parts_are_swept_and_recent_ones_kept(tmp_path):
    frames = {"slates": pd.DataFrame({"user_id": ["U1"], "item_id": ["I1"]})}
    old = run_folder(tmp_path, "scheduled__2026-12-01")
    recent = run_folder(tmp_path, "scheduled__2026-12-05")
    write_part(old, Shard(0, 2), frames, {"fingerprint": "a"})
    write_part(recent, Shard(0, 2), frames, {"fingerprint": "b"})
    _age(old, 49)
    _age(recent, 47)

    assert sweep_stale_parts(tmp_path) == [old]
    assert not old.exists()
    assert (recent / Shard(0, 2).name / "slates.parquet").is_file()
    assert sweep_stale_parts(tmp_path / "nothing-here") == []


def test_a_part_written_late_keeps_its_run_folder(tmp_path):
    """The newest file decides: a run whose folder is old but whose shard wrote a minute ago is kept."""
    frames = {"slates": pd.DataFrame({"user_id": ["U1"], "item_id": ["I1"]})}
    folder = run_folder(tmp_path, "manual__slow")
    write_part(folder, Shard(0, 2), frames, {})
    _age(folder, 72)
    write_part(folder, Shard(1, 2), frames, {})
    os.utime(folder, (time.time() - 72 * 3600,) * 2)
    assert sweep_stale_parts(tmp_path) == []
    parts, metas = read_parts(folder, 2, ["slates"])
    assert len(parts["slates"]) == 2 and len(metas) == 2
