"""Feedback events for published slates, as a landing batch (tests and demos of the feedback loop).

The synthetic shop's users answer the slates in ``serving.recommendations_current`` according to
the simulator's click model (``ml.simulate.environment``), and the answers are written exactly
like a shop export (impression, click and purchase events carrying recommendation_id and
position), so they travel through ingest and dbt into ``marts.bandit_feedback``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ml.simulate.environment import ShopEnvironment


def respond_to_slates(
    slates: pd.DataFrame,
    shop_dir: Path,
    when: pd.Timestamp,
    seed: int = 0,
    day: int = 0,
    days: int = 30,
    visit_share: float = 1.0,
) -> pd.DataFrame:
    """Landing ``events`` rows answering ``slates`` (user_id, rank, item_id, recommendation_id).

    ``shop_dir`` is the generated shop (its ``_ground_truth/`` folder); events happen on the day
    starting at ``when`` (UTC). Only a random ``visit_share`` of the users visits that day and
    sees its slate. Event ids derive from (recommendation_id, position, type), so the same slates
    and seed give the same batch."""
    if not 0.0 < visit_share <= 1.0:
        raise ValueError(f"visit_share must be in (0, 1], got {visit_share}")
    truth_dir = Path(shop_dir) / "_ground_truth"
    truth = pd.read_parquet(truth_dir / "user_interests.parquet")
    item_tags = pd.read_parquet(truth_dir / "item_tags.parquet")
    rng = np.random.default_rng(seed)
    users = sorted(slates["user_id"].unique())
    if visit_share < 1.0:
        users = sorted(rng.choice(users, max(1, round(visit_share * len(users))), replace=False).tolist())
        slates = slates[slates["user_id"].isin(users)]
    env = ShopEnvironment(truth, item_tags, users, days=days, k=int(slates["rank"].max()))
    start = pd.Timestamp(when).tz_localize(None) if pd.Timestamp(when).tzinfo else pd.Timestamp(when)
    ev = env.respond(slates, day, start - pd.Timedelta(days=day), rng)
    ev["event_id"] = [
        f"FB-{r}-{p}-{t}" for r, p, t in zip(ev["recommendation_id"], ev["position"], ev["event_type"], strict=True)
    ]
    out = pd.DataFrame(
        {
            "event_id": ev["event_id"],
            "event_time": pd.to_datetime(ev["event_at"]).dt.tz_localize("UTC"),
            "user_id": ev["user_id"],
            "session_id": "FB-" + ev["recommendation_id"].astype(str),
            "event_type": ev["event_type"],
            "item_id": ev["item_id"],
            "recommendation_id": ev["recommendation_id"].where(ev["event_type"] != "purchase"),
            "position": ev["position"].where(ev["event_type"] != "purchase").astype("Int64"),
            "quantity": pd.array([1 if t == "purchase" else None for t in ev["event_type"]], dtype="Int64"),
        }
    )
    return out.sort_values(["event_time", "event_id"], kind="stable").reset_index(drop=True)
