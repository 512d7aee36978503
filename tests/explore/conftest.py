from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest


@pytest.fixture(scope="module")
def run_policy_loop(tiny_shop):
    """Return a function that takes a warehouse once around the loop: ingest the tiny shop, dbt,
    train the champion, publish with the slot allocator (and publish the same run again), answer
    the slates with feedback events, ingest them, rebuild ``marts.bandit_feedback``."""

    def run(wh: Any, d: Path) -> dict[str, Any]:
        from ml.explore import columns as C
        from ml.features.dbt import build
        from ml.ingest.landing import ingest_paths
        from ml.simulate.landing import respond_to_slates
        from ml.tasks.publishing import publish_recommendations
        from ml.tasks.training import evaluate_and_gate, train_candidate

        ingest_paths([tiny_shop], wh)
        build(wh, target_path=d / "target")
        cand = train_candidate("item_knn", {"neighbours": 50, "shrinkage": 10.0}, run_id="train-1")
        evaluate_and_gate([cand], run_id="train-1")
        kw = {"policy": "slot_allocator", "exploration_budget": {"default": 0.3}, "propensity_draws": 64}
        pub = publish_recommendations(run_id="pub-1", **kw)
        recs = wh.query("select * from serving.recommendations_current")
        log_sql = f"select * from {C.LOGGED_SLATES} where run_id = 'pub-1' order by user_id, position"
        first_log = wh.query(log_sql)
        # re-running the same DAG run on the same data (before any feedback) must change nothing
        publish_recommendations(run_id="pub-1", **kw)
        again = {"recs": wh.query("select * from serving.recommendations_current"), "log": wh.query(log_sql)}
        as_of = wh.query("select max(event_at) as t from marts.interaction_events")["t"].iloc[0]
        events = respond_to_slates(recs, tiny_shop, pd.Timestamp(as_of).normalize() + pd.Timedelta(days=1), seed=3)
        (d / "feedback").mkdir()
        events.to_parquet(d / "feedback" / "events-feedback.parquet", index=False)
        # a batch of recommendation feedback alone has another event-type mix than a shop export,
        # which the landing drift gate rejects by design; the row rules still apply
        ingest_paths([d / "feedback"], wh, gate=False)
        build(wh, select="+bandit_feedback", target_path=d / "target")
        return {"wh": wh, "publish": pub, "recs": recs, "first_log": first_log, "again": again, "events": events}

    return run
