"""``python -m ml bench tagger --out DIR``: baselines vs the fine-tuned transformer, side by side
on one held-out split of a synthetic shop's labelled catalogue, and the recall of true user
interests by the interest profiles built with the fine-tuned tagger.

Writes ``DIR/tagger.json`` shaped ``{"models": {name: {"macro_f1", "micro_f1",
"precision@3", "fit_seconds", "items_per_second", …}}, "profiles": {…}, "config": {…}}``
(after each model too, so an interrupted run keeps what it measured).

Every model's hyper-parameters (:data:`GRIDS`) are chosen by macro F1 on a validation part of
the *training* items; the held-out test items only score the chosen fit. On 2 CPU cores the
``default`` shop takes minutes: fine-tuning runs at tens of items per second, and each
transformer candidate is a full fine-tune (``--no-transformer-tuning`` skips them).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pickle
from pathlib import Path
from typing import Any

from ml.bench.measure import measure, table, write_json

NAME = "tagger"
HELP = "item taggers (Naive Bayes, logistic regression, fine-tuned MiniLM) and profile recall"
MODELS = ("naive_bayes", "logistic_regression", "transformer")
# Every model's hyper-parameters are chosen on a validation part of the training items (never on
# the held-out test items, see ml.tagging.train.select_params), the baselines' as the transformer's.
GRIDS: dict[str, list[dict[str, Any]]] = {
    "naive_bayes": [{"alpha": a} for a in (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)],
    "logistic_regression": [
        {"C": c, "class_weight": w} for w in (None, "balanced") for c in (1.0, 3.0, 10.0, 30.0, 100.0, 300.0)
    ],
    # each candidate is a full fine-tune on 80% of the training items: kept small (2 CPU cores);
    # class weighting is chosen as for logistic regression
    "transformer": [{"class_weight": w} for w in (None, "balanced")],
}
log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--size", default="default", choices=["tiny", "small", "default", "large"])
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--test-share", type=float, default=0.25)
    p.add_argument("--epochs", type=int, default=None, help="transformer fine-tuning epochs (default: the model's)")
    p.add_argument("--train-layers", type=int, default=None, help="transformer layers fine-tuned (top N of 6)")
    p.add_argument("--max-length", type=int, default=None, help="transformer tokens per item")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ", ".join(MODELS))
    p.add_argument("--no-tuning", action="store_true", help="every model with default hyper-parameters")
    p.add_argument(
        "--no-transformer-tuning",
        action="store_true",
        help="the transformer with its defaults (plus --epochs etc.); baselines are still tuned",
    )
    p.add_argument("--no-profiles", action="store_true", help="skip the profile-recall part (needs dbt)")
    p.add_argument(
        "--profiles-only",
        action="store_true",
        help="reuse DIR/tagger.json and DIR/transformer.pkl of an earlier run; only redo the profile part",
    )


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from ml.shop.generate import generate
    from ml.tagging.data import training_set
    from ml.tagging.defaults import MIN_LABELS
    from ml.tagging.vocabulary import Vocabulary

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shop = generate(args.size, seed=args.seed)
    vocabulary = Vocabulary.from_taxonomy()
    labels = shop["truth_item_tags"]
    data = training_set(shop["items"], labels, vocabulary, min_labels=MIN_LABELS, test_share=args.test_share)
    params: dict[str, dict[str, Any]] = {
        "naive_bayes": {},
        "logistic_regression": {},
        "transformer": {
            k: v
            for k, v in {
                "epochs": args.epochs,
                "train_layers": args.train_layers,
                "max_length": args.max_length,
                "threads": args.threads,
            }.items()
            if v is not None
        },
    }
    results: dict[str, dict[str, Any]] = {}
    fitted: dict[str, Any] = {}
    saved = out / "transformer.pkl"
    if args.profiles_only:
        results = json.loads((out / "tagger.json").read_text())["models"]
        fitted["transformer"] = pickle.loads(saved.read_bytes())
    names = [] if args.profiles_only else [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        raise SystemExit(f"unknown models {unknown}; choose from {', '.join(MODELS)}")
    config = {"size": args.size, "seed": args.seed, "test_share": args.test_share, "cpu_count": os.cpu_count()}
    for name in names:
        fitted[name], results[name] = _fit_one(name, params[name], args, data, vocabulary)
        if name == "transformer":
            saved.write_bytes(pickle.dumps(fitted[name], protocol=pickle.HIGHEST_PROTOCOL))
        # what is measured so far survives an interrupted run
        write_json(out, "tagger.json", {"models": results, "config": {**config, **data.summary()}})
    rows = [
        {
            "model": n,
            "macro_f1": r["macro_f1"],
            "micro_f1": r["micro_f1"],
            "precision@3": r["precision@3"],
            "fit_seconds": r["fit_seconds"],
            "items_per_second": r["items_per_second"],
            "tuning_seconds": r.get("tuning_seconds", 0.0),
            "peak_rss_mb": r["peak_rss_mb"],
        }
        for n, r in results.items()
    ]
    payload: dict[str, Any] = {
        "models": results,
        "config": {**config, **data.summary()},
    }
    print(f"Taggers on the {args.size} shop (seed {args.seed}), {data.summary()['test_items']} held-out items:")
    print(table(rows))
    write_json(out, "tagger.json", payload)  # the models' part is kept even if the profile part fails
    if not args.no_profiles and "transformer" in fitted:
        truth = shop["truth_user_interests"]
        metrics = {k: v for k, v in results["transformer"].items() if isinstance(v, float)}
        payload["profiles"] = _profile_recall(out, args, fitted["transformer"], metrics, data, pd.DataFrame(truth))
        prow = [
            {"item tags": k, **{m: v for m, v in r.items() if "[" not in m}}
            for k, r in payload["profiles"].items()
            if isinstance(r, dict)
        ]
        print("\nInterest profiles vs the shop's true interests (tags from the fine-tuned tagger):")
        print(table(prow))
    path = write_json(out, "tagger.json", payload)
    print(f"\nwrote {path} and {chart(payload, out)}")
    return 0


def _fit_one(
    name: str, fixed: dict[str, Any], args: argparse.Namespace, data: Any, vocabulary: Any
) -> tuple[Any, dict[str, Any]]:
    """Tune (on a validation part of the training items, when there is a grid), fit and
    evaluate one tagger; returns it and its result (metrics, tuning seconds and trials, peak
    RSS, params)."""
    from ml.tagging.train import fit_and_evaluate, select_params

    trials: list[dict[str, Any]] = []
    params = dict(fixed)
    grid = tuning_grid(name, fixed, args)
    tuning_seconds = 0.0
    if grid:
        log.info("%s: choosing %s on a validation part of the training items", name, grid)
        with measure(f"{name} tuning") as st_tune:
            chosen, trials = select_params(name, grid, data, vocabulary)
        tuning_seconds = st_tune.seconds
        params = {**params, **chosen}
        log.info("%s: chose %s (%.0f s)", name, chosen, tuning_seconds)
    with measure(name) as stage:
        tagger, metrics = fit_and_evaluate(name, params, data, vocabulary)
    result = {
        **metrics,
        "tuning_seconds": round(tuning_seconds, 3),
        "peak_rss_mb": stage.peak_rss_mb,
        "params": tagger.get_params(),
    }
    if trials:
        result["tuning"] = trials
    log.info("%s %s", name, metrics)
    return tagger, result


def tuning_grid(name: str, fixed: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    """The validation grid of one model: its :data:`GRIDS` entry without the keys fixed on the
    command line (``--epochs`` …), duplicates dropped; empty when there is nothing to choose."""
    if args.no_tuning or (name == "transformer" and args.no_transformer_tuning):
        return []
    grid: list[dict[str, Any]] = []
    for cand in GRIDS.get(name, []):
        free = {k: v for k, v in cand.items() if k not in fixed}
        if free not in grid:
            grid.append(free)
    return grid if len(grid) > 1 else []


def _profile_recall(
    out: Path, args: argparse.Namespace, tagger: Any, metrics: dict[str, Any], data: Any, truth: Any
) -> dict[str, Any]:
    """Ingest the shop and build the marts in a private warehouse under ``out``, register the
    fine-tuned tagger as champion, backfill the last day and compare profiles with the truth."""
    import pandas as pd

    from ml.config import IngestSettings
    from ml.features.dbt import build
    from ml.ingest.landing import ingest_paths
    from ml.registry import ModelVersion, Registry, save_artifact
    from ml.shop.generate import write_shop
    from ml.tagging import store
    from ml.tagging.backfill import TagBackfill
    from ml.tagging.catalog import TaggerArtifact
    from ml.tagging.data import import_labels
    from ml.tagging.defaults import FAMILY
    from ml.tagging.profiles import interest_recall
    from ml.warehouse import Warehouse

    os.environ["INTERESTFLOW_ARTIFACTS"] = str(out / "artifacts")
    shop_dir = out / f"shop-{args.size}-seed{args.seed}"
    if not (shop_dir / "events.parquet").exists():
        write_shop(shop_dir, size=args.size, seed=args.seed)
    db = out / "warehouse.duckdb"
    for p in (db, Path(f"{db}.wal")):
        p.unlink(missing_ok=True)
    wh = Warehouse(f"duckdb:///{db}")
    with measure("ingest+dbt") as st_build:
        ingest_paths([shop_dir], wh, IngestSettings())
        build(wh)
    # merchandisers labelled the training items; held-out items get the model's tags
    train_ids = set(data.part(test=False)[2])
    all_labels = pd.read_parquet(shop_dir / "_ground_truth" / "item_tags.parquet")
    label_file = out / "labels-train-items.parquet"
    all_labels[all_labels["item_id"].isin(train_ids)].to_parquet(label_file, index=False)
    import_labels(label_file, wh)
    artifact = TaggerArtifact(tagger=tagger, vocabulary_version="bench")
    mv = ModelVersion(FAMILY, "transformer", tagger.get_params(), metrics, "bench", "", 0, 0.0, run_id="bench")
    mv.artifact_path, mv.artifact_bytes = save_artifact(artifact, FAMILY, mv.version_id)
    reg = Registry(wh)
    reg.register(mv)
    reg.set_champion(FAMILY, mv.version_id, "bench")
    manifest = json.loads((shop_dir / "_ground_truth" / "manifest.json").read_text())
    end = (pd.Timestamp(manifest["end"]) - pd.Timedelta(seconds=1)).date()  # the last day with behaviour
    results: dict[str, Any] = {"ingest_dbt_seconds": round(st_build.seconds, 1), "as_of": end.isoformat()}
    for label, use_labels in (("labels+model", True), ("model only", False)):
        with measure(label) as st:
            job = TagBackfill(wh, mv.version_id, use_labels=use_labels, force=True, threads=args.threads)
            job.run([end])
        store.switch_current(wh, mv.version_id, "bench")
        profiles = wh.query(f"select * from {store.PROFILES_CURRENT}")
        recall = interest_recall(profiles, truth)
        results[label] = {**{k: round(v, 4) for k, v in recall.items()}, "seconds": round(st.seconds, 1)}
    return results


def chart(payload: dict[str, Any], out: Path) -> Path:
    """``tagger.png``: macro F1, micro F1 and precision@3 per tagger."""
    from ml.bench.plots import grouped_bars

    names = {"macro_f1": "macro F1", "micro_f1": "micro F1", "precision@3": "precision@3"}
    groups = {m: {label: r[key] for key, label in names.items() if key in r} for m, r in payload["models"].items()}
    return grouped_bars(out / "tagger.png", "Interest taggers on held-out items", groups, "score")
