"""``make demo``: generate a shop, run every DAG on it, then let the shop live for a few days.

Day 0 runs every DAG once on the shop's history; each simulated day after it, the shop's users
answer the published slates and the DAGs run in asset order (``ml.simulate.living``). The
summary ends with a day-by-day table of what was served and what it earned.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ml import config

# three days keep `make demo` within 6 minutes on our 2 cores (228 s; five took 355 s: docs/benchmarks.md, "The demo")
DEFAULT_DAYS = 3


class DemoError(RuntimeError):
    """The demo cannot run as asked (the message says why and what to do)."""


def landing_for(size: str, seed: int) -> Path:
    return config.landing_dir() / f"{size}-seed{seed}"


def run(
    size: str = "small",
    seed: int = 7,
    days: int = DEFAULT_DAYS,
    users_to_show: int = 3,
    conf: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Set up (every DAG once) unless done before, then ``days`` more simulated days.
    ``conf``: extra run conf per DAG id on top of the demo's own (see ``living.DEMO_TAGGER_CONF``)."""
    from ml.orchestration import local
    from ml.simulate.living import DEMO_TAGGER_CONF, LivingShop, LoopSettings

    t0 = time.perf_counter()
    local.prepare()
    landing = landing_for(size, seed)
    if not (landing / "events.parquet").exists():
        from ml.shop.generate import write_shop

        write_shop(landing, size=size, seed=seed)
    merged: dict[str, dict[str, Any]] = {"finetune_tagger": dict(DEMO_TAGGER_CONF)}
    for dag_id, extra in (conf or {}).items():
        merged[dag_id] = {**merged.get(dag_id, {}), **extra}
    shop = LivingShop(landing, LoopSettings(size=size, seed=seed, days=days, conf=merged))
    others = shop.other_shops()
    if others:
        raise DemoError(
            f"{config.state_dir()} already holds the living shop {', '.join(others)}; the {landing.name} shop "
            "would mix with it. Run `make clean` first, or point INTERESTFLOW_HOME at another folder."
        )
    setup = shop.setup()
    first = max(shop.days_done(), default=0) + 1
    reports = [shop.run_day(d) for d in range(first, first + days)]
    runs = reports[-1].runs if reports else (setup or {}).get("runs", {})
    summary = collect_summary(runs, users_to_show)
    summary["days"] = shop.reports()
    summary["timings_seconds"] = {"setup": (setup or {}).get("seconds", {})} | {
        f"day {r.day}": r.seconds for r in reports
    }
    summary["wall_seconds"] = round(time.perf_counter() - t0, 1)
    summary["size"] = size
    return summary


def collect_summary(runs: dict[str, str], users_to_show: int = 3) -> dict[str, Any]:
    from ml.registry import Registry
    from ml.warehouse import Warehouse

    wh = Warehouse.from_env()
    with wh.connect(read_only=True) as con:
        batches = wh.query(
            "select table_name, sum(rows_total) as rows_total, sum(accepted) as accepted, "
            "sum(quarantined) as quarantined from raw.ingest_batches where status = 'accepted' "
            "group by table_name order by table_name",
            None,
            con,
        )
        landed = {
            r.table_name: {"rows": int(r.rows_total), "accepted": int(r.accepted), "quarantined": int(r.quarantined)}
            for r in batches.itertuples()
        }
        pub = wh.query(
            "select version, table_name, rows_total, model_version from serving.publish_log "
            "where name = 'recommendations' and run_id = ?",
            [runs.get("publish_recommendations", "")],
            con,
        )
        recs = wh.query(
            "select r.user_id, r.rank, r.item_id, i.title, r.reason from serving.recommendations_current r "
            "join marts.item_features i using (item_id) where r.user_id in "
            "(select distinct user_id from serving.recommendations_current order by user_id limit ?) "
            "order by r.user_id, r.rank",
            [users_to_show],
            con,
        )
        copy = _copy_summary(wh, con)
    from ml.quality.summary import latest_gate_runs

    gates = latest_gate_runs(wh)
    reg = Registry(wh)
    versions = reg.versions()
    trained = versions[versions["run_id"] == runs.get("retrain_models", "")]
    decisions = reg.decisions()
    last = decisions.iloc[-1] if len(decisions) else None
    return {
        "landed": landed,
        "models": [
            {
                "version": r.version_id,
                "model": r.model_name,
                **{
                    k: round(v, 4)
                    for k, v in json.loads(r.metrics).items()
                    if "@" in k and k.split("@")[0] in ("ndcg", "precision", "recall", "coverage")
                },
            }
            for r in trained.itertuples()
        ],
        "quality_gates": gates,
        "gate": None if last is None else {"promoted": bool(last["promoted"]), "reason": last["reason"]},
        "published": None
        if pub.empty
        else {
            "view": "serving.recommendations_current",
            "table": pub["table_name"].iloc[0],
            "rows": int(pub["rows_total"].iloc[0]),
            "model_version": pub["model_version"].iloc[0],
        },
        "examples": {
            u: [{"rank": int(r.rank), "item": f"{r.item_id} {r.title}", "reason": r.reason} for r in g.itertuples()]
            for u, g in recs.groupby("user_id")
        },
        "copy": copy,
    }


def _copy_summary(wh: Any, con: Any) -> dict[str, Any] | None:
    """The latest marketing copy of each (audience, campaign): how many variants, the gate's
    pass rate over their candidates, and one published variant."""
    from ml.marketing.copywriting.publish import LATEST_CANDIDATES_SQL, gate_summary

    if not wh.table_exists(con, "ml", "copy_candidates"):
        return None
    df = wh.query(LATEST_CANDIDATES_SQL, None, con)
    published = df[df["published"].astype(bool)]
    if published.empty:
        return None
    return {
        "variants": len(published),
        "audiences": published["audience"].nunique(),
        "campaigns": published["campaign"].nunique(),
        **gate_summary(df),
        "example": f"{published['audience'].iloc[0]}: {published['text'].iloc[0]}",
    }


def _fit(text: str, width: int) -> str:
    """``text`` padded to ``width`` characters, or cut to fit with an ellipsis."""
    return f"{text:<{width}}" if len(text) <= width else text[: width - 1] + "…"


def render(summary: dict[str, Any]) -> str:
    out = [
        "",
        "=" * 78,
        f"Interestflow demo — {summary.get('size')} shop, {summary.get('wall_seconds')} s",
        "=" * 78,
        "Rows landed (accepted / quarantined):",
    ]
    for t, c in summary["landed"].items():
        out.append(f"  {t:<8} {c['rows']:>9,} rows  {c['accepted']:>9,} accepted  {c['quarantined']:>6,} quarantined")
    from ml.quality.summary import render_gate_runs

    out.append(render_gate_runs(summary.get("quality_gates", [])))
    out.append("Models trained (time-based holdout, last 7 days):")
    for m in summary["models"]:
        metrics = "  ".join(f"{k}={v}" for k, v in m.items() if "@" in k)
        out.append(f"  {m['model']:<12} {m['version']:<24} {metrics}")
    if summary.get("gate"):
        g = summary["gate"]
        out.append(f"Gate: {'PROMOTED' if g['promoted'] else 'kept champion'} — {g['reason']}")
    if summary.get("published"):
        p = summary["published"]
        out.append(f"Published: {p['view']} -> {p['table']} ({p['rows']:,} rows, model {p['model_version']})")
    for user, items in summary["examples"].items():
        out.append(f"Top-{len(items)} for {user}:")
        for it in items:
            out.append(f"  {it['rank']:>2}. {_fit(it['item'], 48)} {it['reason']}")
    if summary.get("copy"):
        c = summary["copy"]
        out.append(
            f"Marketing copy: {c['variants']} variants for {c['audiences']} audience(s) x {c['campaigns']} campaign(s); "
            f"the grounding gate passed {c['passed']} of {c['candidates']} candidates, "
            f"{c['template_fallbacks']} template(s) stood in"
        )
        out.append(f"  e.g. {c['example']}")
    for stage, secs in (summary.get("timings_seconds") or {}).items():
        if secs:
            total = sum(secs.values())
            out.append(f"DAG wall times, {stage} ({total:.0f} s): " + ", ".join(f"{k} {v}" for k, v in secs.items()))
    days = [d for d in summary.get("days", []) if d.get("day")]
    if days:
        from ml.simulate.living import day_table

        out.append("The living shop, day by day (CTR of exploration / exploitation slots; found = share of")
        out.append("users' true interests that got a click, from _ground_truth/; grad = new items graduated):")
        out.append(day_table(days))
    out.append("=" * 78)
    return "\n".join(out)
