"""``--candidates FILE`` of the candidates and pipeline benches: what it accepts and refuses."""

from __future__ import annotations

import json

import pytest

from ml.bench.candidates import read_candidate_file
from ml.cli import main
from ml.errors import UsageError

pytestmark = [pytest.mark.unit]


def test_a_list_of_model_configs_is_read_as_written(tmp_path):
    path = tmp_path / "c.json"
    configs = [{"model": "ease", "params": {"l2": 500.0}}, {"model": "popularity"}]
    path.write_text(json.dumps(configs))
    assert read_candidate_file(path) == configs


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("not json", "Expecting value"),
        ('{"model": "ease"}', "non-empty JSON list"),
        ("[]", "non-empty JSON list"),
        ('["ease"]', "non-empty JSON list"),
        ('[{"model": "ease"}, {"model": "nope"}]', "unknown models ['nope']"),
        ('[{"params": {}}]', "unknown models ['None']"),
    ],
)
def test_a_bad_file_is_refused_with_its_name_and_the_rule(tmp_path, text, says):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(UsageError, match=r"bad\.json") as err:
        read_candidate_file(path)
    assert says in str(err.value)


def test_the_pipeline_bench_refuses_a_bad_file_before_any_work(tmp_path, capsys):
    (tmp_path / "bad.json").write_text('[{"model": "nope"}]')
    out = tmp_path / "out"
    assert (
        main(["bench", "pipeline", "--size", "tiny", "--out", str(out), "--candidates", str(tmp_path / "bad.json")])
        == 2
    )
    assert "unknown models ['nope']" in capsys.readouterr().err
    assert not out.exists()  # nothing generated, no warehouse made
    celery = ["bench", "pipeline", "--size", "tiny", "--out", str(out), "--airflow", "celery"]
    assert main([*celery, "--warehouse", "postgres", "--candidates", str(tmp_path / "bad.json")]) == 2
    assert "Celery run triggers the DAGs by asset" in capsys.readouterr().err
