"""The embedded runtime parses the DAG a run needs from its own file (``dags/<dag_id>.py``), not
the whole folder: a broken file of another DAG fails only that DAG's runs, as under Airflow's
scheduler; a DAG whose file has another name is still found in the folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml import config
from ml.orchestration import local

pytestmark = [pytest.mark.dags]

DAG_FILE = """
from airflow.sdk import dag, task


@dag(dag_id="{dag_id}", schedule=None)
def make():
    @task
    def hello():
        return 1

    hello()


make()
"""
BROKEN_FILE = "from airflow.sdk import dag\n\nraise RuntimeError('this dag file is broken on purpose')\n"


@pytest.fixture
def dags_dir(airflow_runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(config, "DAGS_DIR", tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # (load_dag puts the folder on sys.path; this undoes it)
    return tmp_path


def test_a_run_parses_its_own_file_and_a_broken_neighbour_fails_only_its_own_runs(dags_dir):
    (dags_dir / "good_dag.py").write_text(DAG_FILE.format(dag_id="good_dag"))
    (dags_dir / "broken_dag.py").write_text(BROKEN_FILE)

    dag = local.load_dag("good_dag")

    assert dag.dag_id == "good_dag"
    assert [t.task_id for t in dag.tasks] == ["hello"]
    with pytest.raises(RuntimeError, match="broken on purpose"):
        local.load_dag("broken_dag")


def test_a_dag_in_a_file_of_another_name_is_found_in_the_folder(dags_dir):
    (dags_dir / "pipelines.py").write_text(DAG_FILE.format(dag_id="nightly"))

    assert local.load_dag("nightly").dag_id == "nightly"
    with pytest.raises(KeyError, match="no DAG 'missing'"):
        local.load_dag("missing")
