"""Real DAG runs: a corrupted or drifted batch is blocked in ingest_events, so the chain stops
there: no `raw_events` asset event (nothing schedules build_features, retraining or
publishing), no rows accepted, and the serving view still points at the previous version."""

from __future__ import annotations

import json

import pandas as pd
import pytest

pytestmark = [pytest.mark.dags, pytest.mark.slow]


@pytest.fixture(scope="module")
def served(airflow_runtime, tiny_shop, tmp_path_factory):
    """A warehouse of its own that went through a good ingest run (an asset event) and serves a
    previous recommendation version. Each test compares the state before and after its own run."""
    from ml.orchestration.local import run_dag
    from ml.publish import publish_table
    from ml.warehouse import Warehouse

    home = tmp_path_factory.mktemp("blocking")
    wh = Warehouse(f"duckdb:///{home / 'warehouse.duckdb'}")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INTERESTFLOW_WAREHOUSE", wh.url)
        mp.setenv("INTERESTFLOW_DATA_DOCS", str(home / "data_docs"))
        run_dag("ingest_events", {"paths": [str(tiny_shop)]})
        recs = pd.DataFrame({"user_id": ["U0000001", "U0000002"], "rank": [1, 1], "item_id": ["I000001", "I000002"]})
        recs["score"] = 1.0
        prev = publish_table(recs, "recommendations", "previous-run", wh)
        yield wh, prev.version, home / "data_docs"


@pytest.fixture()
def in_served(served, monkeypatch):
    """Point this test's DAG runs at the served warehouse."""
    wh, _, docs = served
    monkeypatch.setenv("INTERESTFLOW_WAREHOUSE", wh.url)
    monkeypatch.setenv("INTERESTFLOW_DATA_DOCS", str(docs))
    return served


def _raw_events_asset_events() -> int:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        q = select(func.count()).select_from(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
        return int(session.scalar(q.where(AssetModel.name == "raw_events")))


def _state(wh) -> dict:
    from ml.publish.tables import current_version

    with wh.connect(read_only=True) as con:
        current = current_version(wh, con, "recommendations")
        versions = wh.query("select count(*) as n from serving.publish_log", None, con)["n"].iloc[0]
        events = wh.query("select count(*) as n from raw.events", None, con)["n"].iloc[0]
        trained = 0
        if wh.table_exists(con, "registry", "model_versions"):
            trained = wh.query("select count(*) as n from registry.model_versions", None, con)["n"].iloc[0]
        marts = wh.table_exists(con, "marts", "interactions")
    return {
        "current": current,
        "versions": int(versions),
        "events": int(events),
        "trained": int(trained),
        "marts": marts,
        "asset_events": _raw_events_asset_events(),
    }


def _priced_tenfold(tiny_shop, tmp_path, prefix: str):
    """A batch of the shop's carts and purchases with new event ids, priced ten times too high
    (a drift the landing gate stops)."""
    drifted = pd.read_parquet(tiny_shop / "events.parquet")
    drifted = drifted[drifted["price"].notna()].reset_index(drop=True)
    drifted["event_id"] = f"{prefix}-" + drifted["event_id"]
    drifted["price"] = drifted["price"] * 10
    path = tmp_path / f"events-{prefix}.parquet"
    drifted.to_parquet(path, index=False)
    return path


def _run_failing(paths: list[str]) -> str:
    from ml.orchestration.local import run_dag

    with pytest.raises(RuntimeError) as exc:
        run_dag("ingest_events", {"paths": paths})
    assert "load_landing_batches" in str(exc.value)
    return str(exc.value)


def test_corrupted_batch_is_blocked_and_nothing_downstream_runs(in_served, tiny_shop, tmp_path):
    wh, previous, _ = in_served
    before = _state(wh)
    assert before["asset_events"] >= 1 and before["current"] == previous

    bad = pd.read_parquet(tiny_shop / "events.parquet").head(400)
    bad["event_id"] = "corrupt-" + bad["event_id"]
    bad.loc[:59, "event_type"] = "teleport"  # 15 % bad rows > 5 %
    path = tmp_path / "events-corrupted.parquet"
    bad.to_parquet(path, index=False)
    _run_failing([str(path)])

    after = _state(wh)
    assert after == before  # no asset event, nothing accepted, trained or published; same view
    batch = wh.query(
        "select status, rows_total, accepted, quarantined, reasons from raw.ingest_batches where file = ?", [str(path)]
    )
    row = batch.iloc[0]
    assert row["status"] == "blocked" and row["accepted"] == 0 and row["rows_total"] == row["quarantined"] == 400
    assert json.loads(row["reasons"]) == {"unknown_event_type": 60, "batch_blocked": 340}


def test_drifted_batch_trips_the_gate_and_nothing_downstream_runs(in_served, tiny_shop, tmp_path):
    wh, previous, data_docs = in_served
    before = _state(wh)

    shifted = pd.read_parquet(tiny_shop / "events.parquet")
    shifted = shifted[shifted["price"].notna()].reset_index(drop=True)  # carts and purchases ...
    shifted["event_id"] = "drift-" + shifted["event_id"]
    shifted["price"] = shifted["price"] * 10  # ... priced in the wrong currency
    path = tmp_path / "events-drifted.parquet"
    shifted.to_parquet(path, index=False)
    _run_failing([str(path)])

    assert _state(wh) == before and before["current"] == previous
    gate = wh.query(
        "select passed, failures, data_docs_path from quality.gate_runs where gate = 'landing_events' order by checked_at desc limit 1"
    ).iloc[0]
    assert not gate["passed"]
    assert any(f["column"] == "price" for f in json.loads(gate["failures"]))
    assert str(data_docs) in gate["data_docs_path"]


def test_a_run_with_nothing_new_is_skipped_and_emits_no_asset_event(in_served, tiny_shop):
    from ml.orchestration.local import run_dag

    wh, previous, _ = in_served
    before = _state(wh)
    assert before["current"] == previous
    run = run_dag("ingest_events", {"paths": [str(tiny_shop)]})  # the same files again
    states = {ti.task_id: str(ti.state).lower().rsplit(".", 1)[-1] for ti in run.get_task_instances()}
    assert states == {"load_landing_batches": "skipped"}
    assert _state(wh) == before  # no asset event: build_features is not scheduled for nothing


@pytest.fixture()
def smtp_sink(smtp_server, monkeypatch):
    """The local SMTP server, with the alerts Connection pointing at it."""
    monkeypatch.setenv("AIRFLOW_CONN_INTERESTFLOW_ALERTS", smtp_server.connection)
    return smtp_server


def test_a_failing_gate_sends_one_alert_with_its_summary(in_served, tiny_shop, tmp_path, smtp_sink):
    _run_failing([str(_priced_tenfold(tiny_shop, tmp_path, "alert"))])

    assert len(smtp_sink.messages) == 1
    envelope = smtp_sink.messages[0]
    assert envelope.rcpt_tos == ["oncall@example.com"] and envelope.mail_from == "interestflow@example.com"
    subject, body = _mail_text(envelope)
    assert "ingest_events.load_landing_batches failed" in subject
    # the gate's readable summary: which gate, which column
    assert "landing_events" in body and "price" in body


def test_without_the_alerts_connection_a_failure_sends_nothing_and_still_fails(
    in_served, tiny_shop, tmp_path, smtp_server
):
    from ml.orchestration.alerts import ALERT_CONN_ID, alert_connection

    assert alert_connection() is None, f"{ALERT_CONN_ID} must not be defined in this test"
    bad = pd.read_parquet(tiny_shop / "events.parquet").head(100)
    bad["event_id"] = "quiet-" + bad["event_id"]
    bad["event_type"] = "teleport"
    path = tmp_path / "events-quiet.parquet"
    bad.to_parquet(path, index=False)
    _run_failing([str(path)])
    assert smtp_server.messages == []


def _mail_text(envelope) -> tuple[str, str]:
    import email

    msg = email.message_from_bytes(envelope.original_content)
    body = "".join(
        part.get_payload(decode=True).decode() for part in msg.walk() if part.get_content_type() == "text/html"
    )
    return msg["Subject"], body


def test_watch_serving_passes_while_the_served_table_is_fresh(in_served, smtp_sink):
    from ml.orchestration.local import run_dag

    _, previous, _ = in_served
    run = run_dag("watch_serving", {"max_age_hours": 24})
    ti = run.get_task_instances()[0]
    assert str(ti.state).endswith("success")
    assert smtp_sink.messages == []
    from ml.publish.freshness import serving_age

    age = serving_age()
    assert age.version == previous and 0 <= age.age_hours < 1


def test_a_stale_served_table_sends_one_alert_naming_the_version_and_the_failed_gate(
    in_served, tiny_shop, tmp_path, smtp_sink
):
    """A batch blocked by its gate freezes publishing; the hourly watch then fails and mails the
    age of what is served and the gate that failed since (one message for the gate's own failure,
    one for the watch)."""
    from ml.orchestration.local import run_dag

    _, previous, _ = in_served
    _run_failing([str(_priced_tenfold(tiny_shop, tmp_path, "stale"))])
    assert len(smtp_sink.messages) == 1  # the gate's own alert

    with pytest.raises(RuntimeError, match="watch_serving"):
        run_dag("watch_serving", {"max_age_hours": 1e-6})
    assert len(smtp_sink.messages) == 2
    subject, body = _mail_text(smtp_sink.messages[1])
    assert "watch_serving.check_serving_age failed" in subject
    assert f"version {previous}" in body and "older than the allowed 1e-06 h" in body
    assert "gate landing_events FAILED" in body and "price" in body
