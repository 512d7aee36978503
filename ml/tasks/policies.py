"""Task functions of the evaluate_policies DAG: off-policy evaluation on the latest logs, the gate.

``evaluate_policies`` replays the current policy and every candidate on the slates logged in the
last ``window_days`` of ``marts.bandit_feedback`` (each policy fitted on the feedback before that
window), measured by ``reward`` (click, purchase or revenue per shown slot: ``ml.explore.reward``),
writes every estimator's value to ``ml.policy_estimates`` and returns the numbers the gate needs,
with each policy's next-day forecast (``next_estimate``, moved by the logged trend, and
``next_low``, ``next_high``: where one day's realised reward per slot may land, ``ml.ope.forecast``) and its click-through estimate (``ctr``,
``ctr_low``, ``ctr_high``: the guard metric; the same numbers when the reward is the click).
The assistant's answers in the window are evaluated too (its last slot's click-through under
each exploration share, ``ml.assistant.ope``) and written beside the policies, as
``assistant(share=s)``. ``gate_policies`` applies ``ml.ope.gate.decide`` and records the decision.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from ml.explore.defaults import DEFAULT_POLICY, DEFAULT_POLICY_CANDIDATES, POLICY_FAMILY
from ml.explore.reward import Learning
from ml.warehouse import Warehouse

if TYPE_CHECKING:
    from ml.ope.forecast import DailySpread

log = logging.getLogger(__name__)

# what a gate decision's details keep of each evaluated policy
ESTIMATE_KEYS = (
    "estimator",
    "estimate",
    "ci_low",
    "ci_high",
    "next_estimate",
    "next_low",
    "next_high",
    "ctr",
    "ctr_low",
    "ctr_high",
)


def current_policy(wh: Warehouse) -> dict[str, Any]:
    """The serving policy: the registry's ``policy`` champion, else the default (greedy)."""
    from ml.registry import Registry

    champ = Registry(wh).champion(POLICY_FAMILY)
    if champ is None:
        return {"policy": DEFAULT_POLICY, "params": {}, "version": None}
    return {"policy": champ["model_name"], "params": dict(champ["params"]), "version": champ["version_id"]}


def evaluate_policies(
    run_id: str = "manual",
    candidates: list[dict[str, Any]] | None = None,
    window_days: float = 7.0,
    n_bootstrap: int = 200,
    propensity_draws: int = 128,
    reward: str | None = None,
    warehouse: str | None = None,
) -> dict[str, Any]:
    """OPE of the current policy and the candidates on the latest logged feedback, by ``reward``
    (None: the ``policy_reward`` setting, what the policies learn from); each candidate learns
    from the same reward on the feedback before the window."""
    from ml.explore import columns as C
    from ml.explore import store
    from ml.explore.reward import reward_column, upper_bound
    from ml.ope.forecast import daily_spread
    from ml.ope.gate import policy_label
    from ml.settings import settings

    reward = reward or settings().policy_reward
    reward_column(reward)  # an unknown reward fails before any work
    wh = Warehouse.from_env(warehouse)
    window, history, (start, end) = _logged_window(store.load_feedback(wh), window_days)
    if window.empty:
        reason = "no feedback on logged slates yet (marts.bandit_feedback has no row with a propensity)"
        log.info("evaluate_policies: %s", reason)
        return {"evaluated": False, "reason": reason, "run_id": run_id}
    assistant = _assistant_estimates(window, n_bootstrap)
    rounds, skipped = _slate_rounds(wh, window, reward)
    if rounds.rows.empty:
        _write_estimates(wh, run_id, [], "", reward, assistant)
        reason = f"no logged round has its slate context in {C.SLATE_CONTEXTS}: {skipped}"
        return {"evaluated": False, "reason": reason, "run_id": run_id, "assistant": assistant}
    cur = current_policy(wh)
    configs = [
        {"policy": c["policy"], "params": dict(c.get("params") or {})}
        for c in (candidates or DEFAULT_POLICY_CANDIDATES)
    ]
    cur_label = policy_label(cur["policy"], cur["params"])
    spread = daily_spread(rounds.rows[C.SHOWN_AT], rounds.rows[C.REWARD])
    clicks = None
    if reward != "click":  # the guard metric is measured on the same rounds
        clicks = rounds.with_reward("click")
    learning = Learning.of(reward, lambda: store.item_prices(wh))
    results = _estimate_each(
        [{"policy": cur["policy"], "params": cur["params"]}, *configs],
        history,
        rounds,
        propensity_draws,
        n_bootstrap,
        spread,
        clicks,
        upper_bound(reward),
        learning,
    )
    _write_estimates(wh, run_id, results, cur_label, reward, assistant)
    current = next(r for r in results if r["label"] == cur_label)
    out = {
        "evaluated": True,
        "run_id": run_id,
        "reward": reward,
        "window": [str(start), str(end)],
        "n_rounds": len(rounds.rows),
        "skipped": skipped,
        "logged_ctr": float(rounds.rows[C.CLICKED].mean()),
        "logged_reward": float(rounds.rows[C.REWARD].mean()),
        "daily_spread": spread.as_dict(),
        "current": {**current, "version": cur["version"]},
        "candidates": [r for r in results if r["label"] != cur_label],
        "assistant": assistant,
    }
    _log_results(results, reward)
    return out


def _logged_window(
    feedback: pd.DataFrame, window_days: float
) -> tuple[pd.DataFrame, pd.DataFrame, tuple[pd.Timestamp | None, pd.Timestamp | None]]:
    """(the rows with a propensity shown in the last ``window_days`` of the log, every row shown
    before that window, (window start, end))."""
    from ml.explore import columns as C

    logged = feedback[feedback[C.HAS_PROPENSITY].astype(bool)] if len(feedback) else feedback
    if logged.empty:
        return logged, feedback, (None, None)
    end = logged[C.SHOWN_AT].max()
    start = end - pd.Timedelta(days=window_days)
    return logged[logged[C.SHOWN_AT] > start], feedback[feedback[C.SHOWN_AT] <= start], (start, end)


def _slate_rounds(wh: Warehouse, window: pd.DataFrame, reward: str) -> tuple[Any, dict[str, int]]:
    """The window's rounds that can be replayed (``ml.ope.logged.prepare``): the published slates'
    rows whose slate context was logged (the assistant's answers have none), and the skipped counts."""
    from ml.explore import columns as C
    from ml.explore import store
    from ml.ope.logged import prepare

    contexts = store.load_contexts(wh, window[C.RECOMMENDATION_ID].unique().tolist())
    replayable = window[window[C.RECOMMENDATION_ID].isin(list(contexts))]
    k = int(replayable[C.POSITION].max()) if len(replayable) else 0
    return prepare(window, contexts, k, reward)


def _log_results(results: list[dict[str, Any]], reward: str) -> None:
    for r in results:
        log.info(
            "%s: %s %s %.5f [%.5f, %.5f] n=%d; next day [%.5f, %.5f]; CTR %.5f [%.5f, %.5f]",
            r["label"],
            reward,
            r["estimator"],
            r["estimate"],
            r["ci_low"],
            r["ci_high"],
            r["n"],
            r["next_low"],
            r["next_high"],
            r["ctr"],
            r["ctr_low"],
            r["ctr_high"],
        )


def _estimate_each(
    configs: list[dict[str, Any]],
    history: pd.DataFrame,
    rounds: Any,
    propensity_draws: int,
    n_bootstrap: int,
    spread: DailySpread,
    click_rounds: Any = None,
    upper: float = 1.0,
    learning: Learning = Learning(),
) -> list[dict[str, Any]]:
    """OPE of each distinct policy config (by label, first wins), fitted on ``history``, on the
    window's ``rounds``: its chosen estimator's estimate, interval and next-day interval (with the
    logged daily ``spread``), and every estimator's estimate and interval; its click-through
    estimate on ``click_rounds`` (the same rounds with the click as reward; None: ``rounds`` are
    those already); ``upper``: the reward's bound for the next-day interval; ``learning``: what
    the policies learn from on ``history``. The reward models depend on the rounds only: fitted
    once, shared by every policy."""
    from ml.explore.policies import make_policy
    from ml.ope.forecast import next_day_interval
    from ml.ope.gate import policy_label
    from ml.ope.logged import RewardModels, estimate_policy

    models = RewardModels.fit(rounds)
    click_models = RewardModels.fit(click_rounds) if click_rounds is not None else None
    results: list[dict[str, Any]] = []
    seen: set[str] = set()
    for cfg in configs:
        label = policy_label(cfg["policy"], cfg["params"])
        if label in seen:
            continue
        seen.add(label)
        pol = make_policy(cfg["policy"], **cfg["params"]).fit(history, learning)
        est = estimate_policy(pol, rounds, propensity_draws, n_bootstrap, models)
        ctr = est
        if click_rounds is not None:
            ctr = estimate_policy(pol, click_rounds, propensity_draws, n_bootstrap, click_models)
        next_low, next_high = next_day_interval(est.estimate, est.ci_low, est.ci_high, spread, upper=upper)
        results.append(
            {
                "policy": cfg["policy"],
                "params": cfg["params"],
                "label": label,
                "estimator": est.chosen,
                "estimate": est.estimate,
                "ci_low": est.ci_low,
                "ci_high": est.ci_high,
                "next_estimate": spread.forecast(est.estimate),
                "next_low": next_low,
                "next_high": next_high,
                "ctr": ctr.estimate,
                "ctr_low": ctr.ci_low,
                "ctr_high": ctr.ci_high,
                "n": est.n,
                "by_estimator": {k2: list(v) for k2, v in est.by_estimator.items()},
            }
        )
    return results


def _assistant_estimates(window: pd.DataFrame, n_bootstrap: int) -> list[dict[str, Any]]:
    """The assistant's answers in the window (``ml.assistant.ope``): its last slot's click-through
    under each exploration share, ``is_current`` on the configured share; [] without answers."""
    from ml.assistant.ope import POLICY, SHARES, exploration_estimates
    from ml.ope.gate import policy_label
    from ml.settings import settings

    configured = settings().assistant_explore_share
    est = exploration_estimates(window, tuple(sorted({*SHARES, configured})), n_bootstrap)
    return [
        {**r, "label": policy_label(POLICY, {"share": r["share"]}), "is_current": r["share"] == configured}
        for r in est.to_dict("records")
    ]


def _write_estimates(
    wh: Warehouse,
    run_id: str,
    results: list[dict[str, Any]],
    cur_label: str,
    reward: str,
    assistant: list[dict[str, Any]],
) -> None:
    """Replace run ``run_id``'s rows of ``ml.policy_estimates``: one per policy x estimator of the
    ``reward`` estimates, ``is_current`` on the serving policy's; and one per ``assistant``
    exploration share (its last slot's click-through, SNIPS)."""
    from ml.explore import columns as C
    from ml.explore import store

    evaluated_at = datetime.now(UTC)
    rows = [
        (evaluated_at, run_id, r["label"], name, e, lo, hi, r["n"], r["label"] == cur_label, reward)
        for r in results
        for name, (e, lo, hi) in r["by_estimator"].items()
    ]
    rows += [
        (
            evaluated_at,
            run_id,
            a["label"],
            "snips",
            a["estimate"],
            a["ci_low"],
            a["ci_high"],
            a["n"],
            a["is_current"],
            "click",
        )
        for a in assistant
    ]
    df = pd.DataFrame(rows, columns=list(C.POLICY_ESTIMATE_COLUMNS))
    with wh.connect() as con:
        wh.begin(con)
        store.ensure_tables(wh, con)
        wh.execute(con, f"delete from {C.POLICY_ESTIMATES} where run_id = ?", [run_id])
        wh.append_df(con, C.POLICY_ESTIMATES, df)
        wh.commit(con)


def gate_policies(
    evaluation: dict[str, Any],
    run_id: str = "manual",
    margin: float = 0.0,
    ctr_guard: float = 0.0,
    warehouse: str | None = None,
) -> dict[str, Any]:
    """Promote a candidate policy only if its lower bound beats the current estimate + margin and
    its click-through is not shown to fall by more than ``ctr_guard`` (``ml.ope.gate.decide``)."""
    from ml.ope.gate import decide, register_policy
    from ml.registry import Registry

    wh = Warehouse.from_env(warehouse)
    reg = Registry(wh)
    if not evaluation or not evaluation.get("evaluated"):
        reason = f"no evaluation to gate on: {(evaluation or {}).get('reason', 'nothing evaluated')}"
        reg.record_decision(POLICY_FAMILY, run_id, None, None, False, reason, {"evaluation": evaluation})
        return {"promoted": False, "reason": reason}
    cur = evaluation["current"]
    decision = decide(cur, evaluation["candidates"], margin, ctr_guard)
    snapshot = f"fb-{pd.Timestamp(evaluation['window'][1]):%Y%m%dT%H%M}-{evaluation['n_rounds']}"
    challenger_version = None
    if decision.challenger is not None:
        c = decision.challenger
        metrics = {k: float(c[k]) for k in ("estimate", "ci_low", "ci_high", "ctr", "n")}
        challenger_version = register_policy(reg, c["policy"], c["params"], metrics, snapshot, run_id)
    details = {
        "reward": evaluation["reward"],
        "margin": margin,
        "ctr_guard": ctr_guard,
        "window": evaluation["window"],
        "n_rounds": evaluation["n_rounds"],
        "daily_spread": evaluation.get("daily_spread"),
        "current": {k: cur[k] for k in ESTIMATE_KEYS if k in cur} | {"label": cur["label"]},
        "candidates": {c["label"]: {k: c[k] for k in ESTIMATE_KEYS if k in c} for c in evaluation["candidates"]},
    }
    if decision.promoted and challenger_version:
        reg.set_champion(POLICY_FAMILY, challenger_version, decision.reason, actor="gate")
    reg.record_decision(
        POLICY_FAMILY, run_id, challenger_version, cur.get("version"), decision.promoted, decision.reason, details
    )
    log.info("policy gate: %s", decision.reason)
    champ = reg.champion(POLICY_FAMILY)
    return {
        "promoted": decision.promoted,
        "reason": decision.reason,
        "challenger": challenger_version,
        "champion": champ["version_id"] if champ else None,
    }


def override_policy(
    name: str, params: dict[str, Any] | None, reason: str, actor: str = "manual", warehouse: str | None = None
) -> str:
    """Make a policy the serving one by hand (recorded with the reason); returns its version id."""
    from ml.explore.policies import make_policy
    from ml.ope.gate import register_policy
    from ml.registry import Registry

    if not reason.strip():
        raise ValueError("a manual policy override needs a reason")
    make_policy(name, **(params or {}))  # validates name and parameters
    wh = Warehouse.from_env(warehouse)
    reg = Registry(wh)
    prev = reg.champion(POLICY_FAMILY)
    run_id = f"override-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    version = register_policy(reg, name, params or {}, {}, "manual", run_id)
    why = f"manual override by {actor}: {reason}"
    reg.set_champion(POLICY_FAMILY, version, why, actor=actor)
    reg.record_decision(
        POLICY_FAMILY,
        run_id,
        version,
        prev["version_id"] if prev else None,
        True,
        why,
        {"manual": True, "actor": actor},
    )
    return version
