"""``python -m ml publish list|rollback|prune`` against a warehouse URL."""

import pandas as pd
import pytest

from ml.cli import main
from ml.publish import list_versions, publish_table
from ml.publish.tables import version_for

pytestmark = pytest.mark.unit


def _df(n: int, run: str) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [f"u{i}" for i in range(n)], "rank": 1, "item_id": "i1", "run_id": run})


def test_list_rollback_and_prune_from_the_command_line(warehouse, capsys):
    for i, run in enumerate(("run-1", "run-2", "run-3")):
        publish_table(_df(i + 1, run), "recs", run, warehouse, keep=5)
    assert main(["publish", "list", "--name", "recs", "--warehouse", warehouse.url]) == 0
    listed = capsys.readouterr().out
    assert all(version_for(r) in listed for r in ("run-1", "run-2", "run-3"))
    assert (
        main(["publish", "rollback", "--to", version_for("run-1"), "--name", "recs", "--warehouse", warehouse.url]) == 0
    )
    assert warehouse.query("select count(*) as n from serving.recs_current")["n"].iloc[0] == 1
    # the current (rolled-back) version survives pruning to the newest one
    assert main(["publish", "prune", "--keep", "1", "--name", "recs", "--warehouse", warehouse.url]) == 0
    kept = list_versions("recs", warehouse)
    assert set(kept["version"]) == {version_for("run-3"), version_for("run-1")}
    assert kept.loc[kept["current"], "version"].tolist() == [version_for("run-1")]
    assert main(["publish", "rollback", "--to", "v000000000000", "--name", "recs", "--warehouse", warehouse.url]) == 2
    assert "no kept version" in capsys.readouterr().err  # one line on stderr, exit 2
