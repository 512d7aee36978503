import pandas as pd
import pytest

from ml.publish import list_versions, publish_table, rollback

pytestmark = pytest.mark.unit


def _df(n):
    return pd.DataFrame({"user_id": [f"u{i}" for i in range(n)], "rank": 1, "item_id": "i1", "score": 1.0})


def test_publish_switches_view_keeps_n_versions_and_rolls_back(warehouse):
    r1 = publish_table(_df(3), "recs", "run-1", warehouse, keep=2)
    r2 = publish_table(_df(5), "recs", "run-2", warehouse, keep=2)
    assert warehouse.query("select count(*) as n from serving.recs_current")["n"].iloc[0] == 5
    r3 = publish_table(_df(7), "recs", "run-3", warehouse, keep=2)
    assert r3.dropped_versions == [r1.version]
    versions = list_versions("recs", warehouse)
    assert versions["version"].tolist() == [r3.version, r2.version]
    assert versions["current"].tolist() == [True, False]
    rollback("recs", r2.version, warehouse)
    assert warehouse.query("select count(*) as n from serving.recs_current")["n"].iloc[0] == 5
    with pytest.raises(KeyError):
        rollback("recs", r1.version, warehouse)


def test_rerunning_the_same_run_rewrites_the_same_version(warehouse):
    a = publish_table(_df(4), "recs", "run-x", warehouse)
    b = publish_table(_df(4), "recs", "run-x", warehouse)
    assert a.version == b.version
    assert warehouse.query("select count(*) as n from serving.recs_current")["n"].iloc[0] == 4
    assert len(list_versions("recs", warehouse)) == 1
