"""Fit the behaviour-pattern models on the marts and write their tables (replaced atomically).

* ``ml.user_segments(user_id, segment, segment_label, distance, k, silhouette, run_id, as_of)``
* ``ml.category_rules(antecedent, consequent, support, confidence, lift, n_baskets,
  antecedent_support, run_id, as_of)``
* ``ml.category_transitions(from_category, to_category, n, probability, run_id, as_of)``

``as_of`` is the latest interaction event the marts hold, so re-running on the same data
writes the same rows.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from ml.analysis.markov import MarkovNextCategory
from ml.analysis.rules import CategoryAssociationRules
from ml.analysis.segments import SEGMENT_FEATURES, UserSegmenter, segment_users
from ml.features.interactions import newest_event
from ml.warehouse import Warehouse

log = logging.getLogger(__name__)

DDL = {
    "ml.user_segments": """user_id varchar, segment integer, segment_label varchar, distance double precision,
        k integer, silhouette double precision, run_id varchar, as_of timestamp""",
    "ml.category_rules": """antecedent varchar, consequent varchar, support double precision,
        confidence double precision, lift double precision, n_baskets bigint, antecedent_support double precision,
        run_id varchar, as_of timestamp""",
    "ml.category_transitions": """from_category varchar, to_category varchar, n bigint,
        probability double precision, run_id varchar, as_of timestamp""",
}


def replace_table(wh: Warehouse, table: str, df: pd.DataFrame) -> int:
    """Replace all rows of ``table`` (created from :data:`DDL` if missing) with ``df`` in one transaction."""
    with wh.connect() as con:
        wh.ensure_schemas(con)
        wh.execute(con, f"create table if not exists {table} ({DDL[table]})")
        wh.begin(con)
        wh.execute(con, f"delete from {table}")
        wh.append_df(con, table, df)
        wh.commit(con)
    return len(df)


def run_segments(
    wh: Warehouse | None = None, run_id: str = "manual", k_values: tuple[int, ...] | None = None
) -> dict[str, Any]:
    """K-means segments of ``marts.user_features`` -> ``ml.user_segments``; returns k, silhouette, sizes."""
    wh = wh or Warehouse.from_env()
    cols = ", ".join(("user_id", "has_events", *SEGMENT_FEATURES))
    features = wh.query(f"select {cols} from marts.user_features")
    seg = UserSegmenter(k_values=k_values) if k_values else UserSegmenter()
    res = segment_users(features, seg)
    out = res.table.assign(k=res.k, silhouette=res.silhouette, run_id=run_id, as_of=newest_event(wh))
    replace_table(wh, "ml.user_segments", out)
    log.info("segments: k=%d silhouette=%.3f sizes=%s", res.k, res.silhouette, res.sizes)
    return {
        "k": res.k,
        "silhouette": round(res.silhouette, 4),
        "silhouette_by_k": {int(k): round(v, 4) for k, v in res.silhouette_by_k.items()},
        "sizes": res.sizes,
        "users": len(out),
    }


def run_category_rules(
    wh: Warehouse | None = None,
    run_id: str = "manual",
    basket: str = "user",
    min_support: float = 0.005,
    min_confidence: float = 0.05,
) -> dict[str, Any]:
    """Association rules between categories -> ``ml.category_rules``.

    ``basket="user"`` (default): the categories a user engaged with over the whole history;
    ``"session"``: the categories of one session (in shops whose sessions stay in one category,
    session baskets give few rules).
    """
    if basket not in ("user", "session"):
        raise ValueError(f"basket must be 'user' or 'session', not {basket!r}")
    wh = wh or Warehouse.from_env()
    key = "user_id" if basket == "user" else "session_key"
    baskets = wh.query(f"select distinct {key} as basket, category_path from marts.session_categories")
    model = CategoryAssociationRules(min_support=min_support, min_confidence=min_confidence)
    model.fit(baskets, basket_col="basket")
    out = model.rules_.assign(run_id=run_id, as_of=newest_event(wh))
    replace_table(wh, "ml.category_rules", out)
    top = model.rules_.head(3)[["antecedent", "consequent", "lift"]].to_dict("records")
    log.info("category rules: %d rules over %d baskets; top %s", len(out), model.n_baskets_, top)
    return {"rules": len(out), "basket": basket, "baskets": int(model.n_baskets_), "top": top}


def run_category_transitions(wh: Warehouse | None = None, run_id: str = "manual", alpha: float = 0.0) -> dict[str, Any]:
    """The Markov next-category model -> ``ml.category_transitions`` (observed steps with probabilities)."""
    wh = wh or Warehouse.from_env()
    counts = wh.query("select from_category, to_category, n_transitions from marts.category_transition_counts")
    model = MarkovNextCategory(alpha=alpha).fit(counts)
    out = model.to_frame().assign(run_id=run_id, as_of=newest_event(wh))
    replace_table(wh, "ml.category_transitions", out)
    log.info("category transitions: %d categories, %d observed steps", len(model.categories_), len(out))
    return {"categories": len(model.categories_), "transitions": len(out), "steps": int(model.counts_.sum())}
