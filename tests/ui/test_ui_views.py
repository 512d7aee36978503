"""What the page's sections read, on DuckDB and on PostgreSQL, compared with what was written."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.ui.ui_warehouse import ESTIMATORS, GATES, SERVING_POLICY

pytestmark = pytest.mark.unit


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.integration)])
def ui(request, tmp_path):
    """(ReadSession factory, Built) on each back end."""
    from ml.ui.reader import WarehouseReader

    wh, built = request.getfixturevalue(f"ui_{request.param}")
    return WarehouseReader(wh, snapshot_dir=tmp_path / "snaps", refresh_seconds=0.0, quiet_seconds=0.0), built


def test_models_show_every_family_its_champion_and_all_decisions(ui):
    from ml.ui import views

    reader, built = ui
    with reader.session() as rs:
        out = views.models(rs)
    fams = {f["family"]: f for f in out["families"]}
    assert list(fams)[:3] == ["recommender", "tagger", "policy"]
    for fam, ids in built.versions.items():
        f = fams[fam]
        assert [v["version_id"] for v in f["versions"]] == ids  # oldest first, as registered
        assert f["champion"]["version_id"] == built.champions[fam]
        assert [v["version_id"] for v in f["versions"] if v["is_champion"]] == [built.champions[fam]]
        assert len(f["decisions"]) == len(ids)
        assert sum(d["promoted"] for d in f["decisions"]) == len(f["champions"])
        times = [d["decided_at"] for d in f["decisions"]]
        assert times == sorted(times, reverse=True)
    assert fams["recommender"]["primary_metric"] == "ndcg@10"
    assert fams["tagger"]["primary_metric"] == "macro_f1"
    assert "coverage@10" in fams["recommender"]["guard_metrics"]
    assert fams["policy"]["available"] is False and "no policy versions" in fams["policy"]["message"]
    with reader.session() as rs:
        only = views.models(rs, family="tagger", limit=2)
    assert [f["family"] for f in only["families"]] == ["tagger"]
    assert [v["version_id"] for v in only["families"][0]["versions"]] == built.versions["tagger"][-2:]


def test_quality_lists_the_last_runs_per_gate_and_quarantine_reasons(ui):
    from ml.ui import views

    reader, built = ui
    with reader.session() as rs:
        out = views.quality(rs, limit=3)
        q = rs.query("select reason, count(*) as n from raw.quarantine group by reason")
    gates = {g["gate"]: g for g in out["gates"]["gates"]}
    assert set(gates) == set(GATES)
    for gate, g in gates.items():
        expected = built.gate_runs[built.gate_runs["gate"] == gate].sort_values("checked_at", ascending=False).head(3)
        assert [r["run_id"] for r in g["runs"]] == expected["run_id"].tolist()
        assert [r["passed"] for r in g["runs"]] == expected["passed"].tolist()
        assert g["last_passed"] == bool(expected["passed"].iloc[0])
        for r, failures in zip(g["runs"], expected["failures"], strict=True):
            assert r["failures"] == json.loads(failures)
            assert r["data_docs_url"] == "data-docs/ui-tests/data_docs/local_site/index.html"
    reasons = {r["reason"]: r["n"] for r in out["quarantine"]["reasons"]}
    assert reasons == dict(zip(q["reason"], q["n"], strict=True)) and sum(reasons.values()) > 0
    assert out["quarantine"]["total"] == sum(reasons.values())
    assert {b["table_name"] for b in out["batches"]["batches"]} == {"items", "users", "events"}


def test_exploration_ctr_per_day_and_arm_matches_the_feedback(ui):
    from ml.ui import views

    reader, built = ui
    with reader.session() as rs:
        out = views.exploration(rs, days=365)
    fb = built.feedback.assign(
        day=pd.to_datetime(built.feedback["shown_at"]).dt.date.astype(str),
        arm=built.feedback["is_exploration"].map({True: "exploration", False: "exploitation"}),
    )
    want = fb.groupby(["day", "arm"])["clicked"].agg(["size", "sum"]).reset_index()
    got = pd.DataFrame(out["ctr"]["days"])
    assert got[["day", "arm"]].values.tolist() == want[["day", "arm"]].values.tolist()
    assert got["impressions"].tolist() == want["size"].tolist()
    assert got["clicks"].tolist() == want["sum"].tolist()
    assert (got["ctr"] == got["clicks"] / got["impressions"]).all()
    assert ((got["ci_low"] <= got["ctr"]) & (got["ctr"] <= got["ci_high"])).all()
    for s in out["ctr"]["share"]:
        day = fb[fb["day"] == s["day"]]
        assert s["share"] == pytest.approx(day["is_exploration"].mean())
    policy = out["policy"]
    assert policy["current"] == SERVING_POLICY
    (serving,) = policy["serving"]
    recs = built.recommendations
    assert serving["slots"] == len(recs) and serving["users"] == recs["user_id"].nunique()
    assert serving["exploration_share"] == pytest.approx(recs["is_exploration"].mean())
    assert serving["min_propensity"] == pytest.approx(recs["propensity"].min())
    # the latest evaluation run's estimates of every policy, not the serving policy's of every run
    current = built.estimates[built.estimates["evaluated_at"] == built.estimates["evaluated_at"].max()]
    rows = out["estimates"]["current"]
    assert len(rows) == len(current) and {r["estimator"] for r in rows} == set(ESTIMATORS)
    for r in rows:
        src = current[(current["policy"] == r["policy"]) & (current["estimator"] == r["estimator"])].iloc[0]
        assert (r["estimate"], r["ci_low"], r["ci_high"]) == pytest.approx((src.estimate, src.ci_low, src.ci_high))
        assert r["is_serving"] == (r["policy"] == SERVING_POLICY)
    assert len(out["estimates"]["history"]) == len(built.estimates)


def test_ctr_window_keeps_only_the_last_days(ui):
    from ml.ui import views

    reader, built = ui
    with reader.session() as rs:
        out = views.exploration(rs, days=2)
    days = sorted({r["day"] for r in out["ctr"]["days"]})
    all_days = sorted(pd.to_datetime(built.feedback["shown_at"]).dt.date.astype(str).unique())
    assert days == all_days[-2:]


def test_user_view_shows_profile_behaviour_and_the_published_top_k(ui):
    from ml.ui import views

    reader, built = ui
    uid = built.profiles["user_id"].iloc[0]
    with reader.session() as rs:
        out = views.user(rs, uid, k=10, recent=5)
        events = rs.query("select count(*) as n from marts.interaction_events where user_id = ?", [uid])
    recs = built.recommendations[built.recommendations["user_id"] == uid].sort_values("rank")
    items = out["recommendations"]["items"]
    assert [r["item_id"] for r in items] == recs["item_id"].tolist()
    assert [r["rank"] for r in items] == recs["rank"].tolist()
    assert [r["is_exploration"] for r in items] == recs["is_exploration"].tolist()
    assert [r["propensity"] for r in items] == pytest.approx(recs["propensity"].tolist())
    assert all(r["reason"] and r["title"] for r in items)
    assert out["recommendations"]["published"]["run_id"] == "ui-run"
    prof = built.profiles[built.profiles["user_id"] == uid]
    assert {t["tag"] for t in out["profile"]["known"]} == set(prof[prof["status"] == "known"]["tag"])
    assert {t["tag"] for t in out["profile"]["candidate"]} == set(prof[prof["status"] == "candidate"]["tag"])
    weights = [t["weight"] for t in out["profile"]["known"]]
    assert weights == sorted(weights, reverse=True)
    assert sum(c["n"] for c in out["behaviour"]["counts"]) == int(events["n"].iloc[0])
    recent = [e["event_at"] for e in out["behaviour"]["recent"]]
    assert len(recent) == min(5, int(events["n"].iloc[0])) and recent == sorted(recent, reverse=True)


def test_a_user_with_behaviour_but_no_slate_is_found_and_says_so(ui):
    from ml.ui import views

    reader, built = ui
    without = sorted(set(built.users) - set(built.recommendations["user_id"]))[0]
    with reader.session() as rs:
        out = views.user(rs, without)
    assert out["recommendations"]["items"] == [] and "no published recommendations" in out["recommendations"]["message"]
    assert out["profile"]["known"] == [] and out["behaviour"]["recent"]


def test_unknown_user_is_no_such_user(ui):
    from ml.ui import views
    from ml.ui.errors import NoSuchUser

    reader, _ = ui
    with reader.session() as rs, pytest.raises(NoSuchUser, match="no such user: U9999999"):
        views.user(rs, "U9999999")


def test_user_prefix_search(ui):
    from ml.ui import views

    reader, built = ui
    prefix = built.recommendations["user_id"].iloc[0][:-1]
    with reader.session() as rs:
        out = views.users(rs, prefix=prefix, limit=5)
    want = sorted(u for u in built.recommendations["user_id"].unique() if u.startswith(prefix))[:5]
    assert out["users"] == want


@pytest.mark.parametrize(
    "bad",
    ["", " U1", "U 1", "U1;drop table raw.events", "x" * 65, "-U1", "Ü1", "U1'--", "U1%", "../etc/passwd"],
)
def test_invalid_user_ids_are_rejected_before_any_query(bad):
    from ml.ui.errors import BadInput
    from ml.ui.views import validate_user_id

    with pytest.raises(BadInput, match="invalid user id"):
        validate_user_id(bad)


def test_valid_user_ids_pass():
    from ml.ui.views import validate_user_id

    for good in ("U0000001", "u1", "a.b-c_d:e@f", "9" * 64):
        assert validate_user_id(good) == good


def test_an_empty_warehouse_reports_each_section_as_not_available(tmp_path):
    from ml.ui import views
    from ml.ui.errors import NoSuchUser
    from ml.ui.reader import WarehouseReader
    from ml.warehouse import Warehouse

    wh = Warehouse(f"duckdb:///{tmp_path / 'empty.duckdb'}")
    with wh.connect() as con:
        wh.ensure_schemas(con)
    with WarehouseReader(wh, snapshot_dir=tmp_path / "s").session() as rs:
        assert views.models(rs) == {
            "available": False,
            "message": "the model registry not available yet: table registry.model_versions does not exist",
        }
        q = views.quality(rs)
        assert [q[k]["available"] for k in ("gates", "quarantine", "batches")] == [False, False, False]
        e = views.exploration(rs)
        assert e["estimates"]["available"] is False and e["ctr"]["available"] is False
        assert e["policy"]["serving"] == []
        assert views.users(rs)["available"] is False
        with pytest.raises(NoSuchUser):
            views.user(rs, "U0000001")
        assert not any(views.status(rs)["tables"].values())


def test_wilson_interval_contains_the_rate_and_narrows_with_more_trials():
    from ml.ui.views import wilson

    assert wilson(0, 0) == (None, None)
    for clicks, n in [(0, 10), (3, 10), (10, 10), (30, 100), (300, 1000)]:
        lo, hi = wilson(clicks, n)
        assert lo is not None and hi is not None
        assert 0.0 <= lo <= clicks / n <= hi <= 1.0
    lo_small, hi_small = wilson(3, 10)
    lo_big, hi_big = wilson(300, 1000)
    assert (hi_big - lo_big) < (hi_small - lo_small)


def test_jsonable_turns_warehouse_values_into_json():
    import numpy as np

    from ml.ui.views import jsonable

    ts = pd.Timestamp("2026-01-02T03:04:05Z")
    out = jsonable({"a": np.int64(3), "b": np.float64("nan"), "c": ts, "d": [pd.NaT, None, np.bool_(True)]})
    assert out == {"a": 3, "b": None, "c": ts.isoformat(), "d": [None, None, True]}
    assert json.loads(json.dumps(out)) == out


def test_data_docs_files_are_served_only_from_the_state_folder(ui):
    from ml.ui.errors import BadInput
    from ml.ui.views import data_docs_file, data_docs_url

    _, built = ui
    url = data_docs_url(str(built.docs_file))
    assert url is not None and data_docs_file(url.removeprefix("data-docs/")).read_text().startswith("<html>")
    assert data_docs_url("https://docs.example/run/1.html") == "https://docs.example/run/1.html"
    assert data_docs_url("/etc/hosts") is None
    for bad in ("../../etc/passwd", "ui-tests/../warehouse.duckdb", "warehouse.duckdb"):
        with pytest.raises(BadInput):
            data_docs_file(bad)
    with pytest.raises(FileNotFoundError):
        data_docs_file("ui-tests/none.html")
