"""``python -m ml bench features --size default``: time ``dbt build`` of the feature layer on
DuckDB and on PostgreSQL.

Generates the shop (or reuses it), ingests it into a fresh warehouse per target (row rules only:
the gates are not what is measured), then times one full ``dbt build`` (seeds, models, unit and
data tests) from an empty ``staging``/``marts`` — wall seconds and peak RSS of the process tree —
and prints both. ``--out DIR`` writes ``features.json``.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path
from typing import Any

from ml.bench import SHOP_SIZES

NAME = "features"
HELP = "dbt build time of the feature layer on DuckDB and on PostgreSQL"
TARGETS = ("duckdb", "postgres")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", choices=SHOP_SIZES, default="default", help="shop size")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--targets", default=",".join(TARGETS), help="comma-separated: duckdb,postgres")
    p.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432", help="server URL (no database)")
    p.add_argument("--pg-database", default="interestflow_bench", help="database created (and dropped) for the run")
    p.add_argument("--workdir", type=Path, help="shop, DuckDB file and dbt artefacts (default: a temp folder)")
    p.add_argument("--out", type=Path, help="write features.json here")


def _dbt_summary(output: str) -> dict[str, Any]:
    done = re.search(r"Done\. PASS=(\d+) WARN=(\d+) ERROR=(\d+) SKIP=(\d+)", output)
    inner = re.search(r"in \d+ hours \d+ minutes and [\d.]+ seconds \(([\d.]+)s\)", output)
    out: dict[str, Any] = {"dbt_reported_seconds": float(inner.group(1)) if inner else None}
    if done:
        out.update(dict(zip(("pass", "warn", "error", "skip"), map(int, done.groups()), strict=True)))
    return out


def _pg_admin(url: str) -> Any:
    import psycopg

    return psycopg.connect(f"{url}/postgres", autocommit=True, connect_timeout=5)


def _bench_target(target: str, shop: Path, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    from ml.bench.measure import measure
    from ml.features.dbt import run_dbt
    from ml.ingest.landing import ingest_paths
    from ml.warehouse import Warehouse

    if target == "duckdb":
        path = work / "features-bench.duckdb"
        for p in (path, path.with_suffix(".duckdb.wal")):
            p.unlink(missing_ok=True)
        wh = Warehouse(f"duckdb:///{path}")
        where = str(path)
    else:
        admin = _pg_admin(args.pg_url)
        admin.execute(f"drop database if exists {args.pg_database} with (force)")
        admin.execute(f"create database {args.pg_database}")
        wh = Warehouse(f"{args.pg_url}/{args.pg_database}")
        where = f"{args.pg_url}/{args.pg_database}"
    try:
        with measure(f"ingest-{target}") as ing:
            reports = ingest_paths([shop], wh, gate=False)
        with measure(f"dbt-build-{target}") as st:
            res = run_dbt(["build"], wh, check=False, target_path=work / f"target-{target}", stream=True)
        rows = {r.table: r.accepted for r in reports}
        marts = {}
        if res.returncode == 0:
            for t in ("interaction_events", "interactions", "user_features", "item_features", "training_snapshots"):
                marts[t] = int(wh.query(f"select count(*) as n from marts.{t}")["n"].iloc[0])
        return {
            "target": target,
            "warehouse": where,
            "events": rows.get("events", 0),
            "ingest_seconds": round(ing.seconds, 1),
            "dbt_build_seconds": round(st.seconds, 1),
            "peak_rss_mb": st.peak_rss_mb,
            "ok": res.returncode == 0,
            "marts_rows": marts,
            **_dbt_summary(res.output),
            "tail": "" if res.returncode == 0 else "\n".join(res.output.splitlines()[-25:]),
        }
    finally:
        if target == "postgres":
            admin.execute(f"drop database if exists {args.pg_database} with (force)")
            admin.close()


def run(args: argparse.Namespace) -> int:
    from ml.bench.measure import table, write_json
    from ml.shop.generate import write_shop

    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        print(f"unknown targets {unknown}: use {', '.join(TARGETS)}")
        return 2
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-features-"))
    work.mkdir(parents=True, exist_ok=True)
    shop = work / f"shop-{args.size}-seed{args.seed}"
    if not (shop / "events.parquet").exists():
        write_shop(shop, size=args.size, seed=args.seed)
    results = []
    for target in targets:
        try:
            results.append(_bench_target(target, shop, work, args))
        except Exception as exc:  # an unreachable server is reported, not a traceback
            results.append({"target": target, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
    print(f"dbt build of the feature layer, {args.size} shop (seed {args.seed}):")
    print(
        table(
            results,
            [
                "target",
                "events",
                "ingest_seconds",
                "dbt_build_seconds",
                "dbt_reported_seconds",
                "peak_rss_mb",
                "pass",
                "error",
                "ok",
            ],
            floatfmt="{:.1f}",
        )
    )
    for r in results:
        if not r.get("ok"):
            print(f"\n{r['target']} failed:\n{r.get('tail') or r.get('error')}")
    if args.out:
        path = write_json(args.out, "features.json", {"size": args.size, "seed": args.seed, "results": results})
        print(f"wrote {path} and {chart(results, args.out, args.size)}")
    return 0 if all(r.get("ok") for r in results) else 1


def chart(results: list[dict[str, Any]], out: Path, size: str) -> Path:
    """``features.png``: ingest and dbt build seconds per warehouse."""
    from ml.bench.plots import grouped_bars

    groups = {
        r["target"]: {"ingest": r.get("ingest_seconds") or 0.0, "dbt build": r.get("dbt_build_seconds") or 0.0}
        for r in results
    }
    return grouped_bars(out / "features.png", f"Feature layer on the {size} shop", groups, "seconds")
