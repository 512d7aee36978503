"""Reference profiles: what a passed gate run saw, so the next run can check volume and drift.

A profile is plain JSON stored in ``quality.gate_runs.details["profile"]``::

    {frame: {"rows": n,
             "categorical": {column: {"values": [...], "weights": [...]}},
             "numeric": {column: {"edges": [e1, ..., e_{b-1}], "weights": [w1, ..., w_b]}}}}

Numeric columns keep the reference's inner quantile edges; at check time the outer edges are
-inf and +inf, so new values beyond the old range land in the tail bins instead of breaking
the divergence (a shifted distribution then shows up as a large KL divergence).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ml.quality.suite import DriftCheck, FrameSpec

# weight given to a category or bin the reference never saw, so the divergence stays finite
# but large (about log(1/EPS) per unit of observed mass there)
EPS = 1e-4


def frame_profile(df: pd.DataFrame, spec: FrameSpec) -> dict[str, Any]:
    """Row count plus the distributions of the spec's drift columns."""
    out: dict[str, Any] = {"rows": len(df), "categorical": {}, "numeric": {}}
    for check in spec.drift:
        if check.column not in df.columns:
            continue
        s = df[check.column].dropna()
        if s.empty:
            continue
        if check.kind == "categorical":
            shares = s.astype(str).value_counts(normalize=True).sort_index()
            out["categorical"][check.column] = {"values": shares.index.tolist(), "weights": shares.round(8).tolist()}
        else:
            x = pd.to_numeric(s, errors="coerce").dropna().to_numpy(dtype=float)
            if x.size == 0:
                continue
            edges = np.unique(np.quantile(x, np.linspace(0, 1, check.bins + 1))[1:-1])
            counts = np.histogram(x, bins=np.concatenate([[-np.inf], edges, [np.inf]]))[0]
            out["numeric"][check.column] = {
                "edges": [float(e) for e in edges],
                "weights": (counts / counts.sum()).round(8).tolist(),
            }
    return out


def volume_expectation(spec: FrameSpec, reference: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """``expect_table_row_count_to_be_between`` around the reference's row count."""
    prev = int(reference.get("rows", 0))
    if not spec.has_volume or prev <= 0:
        return None
    kwargs: dict[str, Any] = {}
    if spec.max_drop is not None:
        kwargs["min_value"] = math.floor(prev * (1.0 - float(spec.max_drop)))
    if spec.max_growth is not None:
        kwargs["max_value"] = math.ceil(prev * float(spec.max_growth))
    kwargs["meta"] = {"check": "volume", "previous_rows": prev}
    return "expect_table_row_count_to_be_between", kwargs


def drift_expectation(
    check: DriftCheck, reference: dict[str, Any], observed: pd.Series
) -> tuple[str, dict[str, Any]] | None:
    """``expect_column_kl_divergence_to_be_less_than`` against the reference distribution.

    Categories the reference never saw get a tiny reference weight (EPS): the divergence stays
    finite, and grows with the share of such values.
    """
    meta = {"check": "drift", "kind": check.kind}
    if check.kind == "categorical":
        ref = (reference.get("categorical") or {}).get(check.column)
        if not ref:
            return None
        weights = dict(zip(ref["values"], ref["weights"], strict=True))
        for v in observed.dropna().astype(str).unique().tolist():
            weights.setdefault(v, 0.0)
        values = sorted(weights)
        w = np.array([max(weights[v], EPS) for v in values])
        partition = {"values": values, "weights": (w / w.sum()).tolist()}
    else:
        ref = (reference.get("numeric") or {}).get(check.column)
        if not ref:
            return None
        w = np.maximum(np.asarray(ref["weights"], dtype=float), EPS)
        partition = {"bins": [-math.inf, *ref["edges"], math.inf], "weights": (w / w.sum()).tolist()}
    return (
        "expect_column_kl_divergence_to_be_less_than",
        {"column": check.column, "partition_object": partition, "threshold": check.max_kl, "meta": meta},
    )
