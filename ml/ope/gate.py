"""The policy gate: a candidate replaces the serving policy only on evidence from the latest logs.

Rule: among candidates different from the current policy, take the one with the highest lower
bound of its 95 % bootstrap interval (its DR-family estimate, picked by ``ml.ope.select``). It is
promoted only if that lower bound exceeds the current policy's estimate on the same logs plus
``margin``. Estimates are in the reward ``evaluate_policies`` measured (clicks, purchases or
revenue per shown slot); the click-through rate is a guard: a candidate whose click-through
interval lies wholly below the current policy's click-through estimate minus ``ctr_guard`` is not
eligible, whatever its reward. The decision, with every number, is recorded in the registry (family ``policy``);
a person can override it with a reason (``python -m ml policy override``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ml.explore.defaults import POLICY_FAMILY


def policy_label(name: str, params: dict[str, Any] | None) -> str:
    """``name`` or ``name(k=v,...)`` with sorted parameters: how estimates name a policy."""
    if not params:
        return name
    inner = ",".join(f"{k}={json.dumps(v, sort_keys=True, separators=(',', ':'))}" for k, v in sorted(params.items()))
    return f"{name}({inner})"


@dataclass(frozen=True)
class GateDecision:
    promoted: bool
    challenger: dict[str, Any] | None
    reason: str


def decide(
    current: dict[str, Any], candidates: list[dict[str, Any]], margin: float = 0.0, ctr_guard: float = 0.0
) -> GateDecision:
    """Apply the rule. ``current`` and each candidate hold ``policy``, ``params``, ``estimator``,
    ``estimate``, ``ci_low``, ``ci_high`` (the reward per shown slot) and ``ctr``, ``ctr_low``,
    ``ctr_high`` (click-through per shown slot, the guard)."""
    cur_label = policy_label(current["policy"], current.get("params"))
    others = [c for c in candidates if policy_label(c["policy"], c.get("params")) != cur_label]
    if not others:
        return GateDecision(False, None, f"no candidate other than the current policy {cur_label}")
    floor = current["ctr"] - ctr_guard
    guarded = [c for c in others if c["ctr_high"] < floor]
    others = [c for c in others if c["ctr_high"] >= floor]
    held = ""
    if guarded:
        names = ", ".join(f"{policy_label(c['policy'], c.get('params'))} {c['ctr_high']:.5f}" for c in guarded)
        held = (
            f"; held back by the click-through guard (upper bound below current {current['ctr']:.5f} "
            f"- {ctr_guard}): {names}"
        )
    if not others:
        return GateDecision(False, None, f"no candidate passes the click-through guard{held}")
    best = max(others, key=lambda c: c["ci_low"])
    label = policy_label(best["policy"], best.get("params"))
    bar = current["estimate"] + margin
    if best["ci_low"] > bar:
        reason = (
            f"{label}: lower bound {best['ci_low']:.5f} ({best['estimator']}) beats current {cur_label} "
            f"estimate {current['estimate']:.5f} + margin {margin}{held}"
        )
        return GateDecision(True, best, reason)
    reason = (
        f"best candidate {label}: lower bound {best['ci_low']:.5f} ({best['estimator']}) does not beat current "
        f"{cur_label} estimate {current['estimate']:.5f} + margin {margin}{held}"
    )
    return GateDecision(False, best, reason)


def register_policy(
    reg: Any, name: str, params: dict[str, Any], metrics: dict[str, float], snapshot_id: str, run_id: str
) -> str:
    """Record a policy configuration as a registry version (family ``policy``); returns its id."""
    from ml.registry import ModelVersion, save_artifact

    mv = ModelVersion(
        family=POLICY_FAMILY,
        model_name=name,
        params=dict(params),
        metrics=dict(metrics),
        snapshot_id=snapshot_id,
        artifact_path="",
        artifact_bytes=0,
        train_seconds=0.0,
        run_id=run_id,
    )
    mv.artifact_path, mv.artifact_bytes = save_artifact(
        {"policy": name, "params": params}, POLICY_FAMILY, mv.version_id
    )
    reg.register(mv)
    return mv.version_id
