"""The embedded runtime plays the scheduler's part for the asset chain, so it leaves no
asset-triggered run queued: a scheduler started later on the same metadata DB (`make airflow`
after `make demo`) starts nothing from the runs it finds in the history."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.dags, pytest.mark.slow]


def _emitted(session, run) -> set[int]:
    from airflow.models.asset import AssetEvent
    from sqlalchemy import select

    stmt = select(AssetEvent.asset_id).where(
        AssetEvent.source_dag_id == run.dag_id, AssetEvent.source_run_id == run.run_id
    )
    return set(session.scalars(stmt))


def test_after_run_dag_nothing_is_queued_for_the_downstream_dags(pipeline_runs):
    from airflow.models.asset import AssetDagRunQueue, DagScheduleAssetReference
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        for dag_id, run in pipeline_runs.items():
            emitted = _emitted(session, run)
            assert emitted, f"{dag_id} emitted no asset event"  # the events stay recorded
            consumers = set(
                session.scalars(
                    select(DagScheduleAssetReference.dag_id).where(DagScheduleAssetReference.asset_id.in_(emitted))
                )
            )
            assert consumers, f"no DAG is scheduled on the assets {dag_id} emitted"
            queued = session.scalars(select(AssetDagRunQueue).where(AssetDagRunQueue.asset_id.in_(emitted))).all()
            assert queued == [], f"{dag_id} left asset-triggered runs queued: {queued}"


def test_consuming_a_runs_queue_keeps_other_assets_rows(pipeline_runs):
    from airflow.models.asset import AssetDagRunQueue, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import delete, select

    from ml.orchestration.local import consume_queued_runs

    ingest = pipeline_runs["ingest_events"]
    with create_session() as session:
        other = session.scalar(select(AssetModel.id).where(AssetModel.name == "policy_champion"))
        assert other is not None and other not in _emitted(session, ingest)
        session.add(AssetDagRunQueue(asset_id=other, target_dag_id="publish_recommendations"))
    try:
        assert consume_queued_runs(ingest) == []
        with create_session() as session:
            left = session.scalars(select(AssetDagRunQueue).where(AssetDagRunQueue.asset_id == other)).all()
            assert [q.target_dag_id for q in left] == ["publish_recommendations"]
    finally:
        with create_session() as session:
            session.execute(delete(AssetDagRunQueue).where(AssetDagRunQueue.asset_id == other))
