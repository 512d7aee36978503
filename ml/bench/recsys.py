"""``python -m ml bench recsys``: accuracy and speed of every recommender.

Protocol on MovieLens-100k (that of Microsoft Recommenders' MovieLens benchmark): a per-user
random 75/25 split of the ratings with a fixed seed; every test rating is relevant whatever its
value; items the user rated in training are excluded; top k = 10; users evaluated are the test
users (all of them appear in training). Metric conventions: see :mod:`ml.evaluate.metrics`
(``map@10`` is normalised by min(|relevant|, k), ``map_rel@10`` by |relevant| like their table).

Hyper-parameters are chosen on a validation split carved from the *training* data only (the
same per-user 75/25 random split of the training rows, another seed; for the temporal protocol
the last quarter of the training period), then every model is refitted on the whole training
split and scored once on the test split. The blend's weights are fitted on the same validation
split. The temporal protocol cuts all interactions at the time that leaves the newest 25 % for
the test set and evaluates the users who have a history before the cut.

Outputs in ``--out``: ``train.parquet``, ``test.parquet`` (user_id, item_id, rating,
timestamp), ``recs/<model>.parquet`` (user_id, item_id, rank from 1, score), ``metrics.json``;
the temporal protocol writes the same under ``--out/temporal/``. The synthetic shop
(``--dataset synthetic --size large``) measures fit/recommend seconds and peak memory.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ml.bench import SHOP_SIZES
from ml.bench.measure import measure, table, write_json
from ml.errors import UsageError

NAME = "recsys"
HELP = "recommender accuracy and speed: MovieLens-100k (MS Recommenders protocol) or the synthetic shop"
log = logging.getLogger(__name__)

ALL_MODELS = (
    "popularity",
    "item_knn",
    "user_knn",
    "als",
    "bpr",
    "ease",
    "content",
    "two_tower",
    "context",
    "blend",
)
BLEND_CANDIDATES = ("ease", "item_knn", "user_knn", "als", "bpr", "two_tower", "content")
PUBLISHED = {  # Microsoft Recommenders README, MovieLens-100k, k=10 (for the printed comparison)
    "BiVAE": {"ndcg@10": 0.475077, "precision@10": 0.411771, "map_rel@10": 0.146126, "recall@10": 0.219145},
    "BPR (cornac)": {"ndcg@10": 0.441997, "precision@10": 0.388229, "map_rel@10": 0.132478, "recall@10": 0.212522},
}


def _grid(**axes: list[Any]) -> list[dict[str, Any]]:
    keys = list(axes)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*axes.values())]


# Search spaces (MovieLens-size data). The first entry is the default used with --no-tune. The
# SGD-trained models run single-threaded here so that a rerun gives the same numbers.
GRIDS: dict[str, list[dict[str, Any]]] = {
    "popularity": _grid(half_life_days=[0.0, 30.0, 180.0], use_weights=[False]),
    "item_knn": _grid(neighbours=[50, 100, 200], shrinkage=[0.0, 10.0, 50.0], bm25=[True, False]),
    "user_knn": _grid(neighbours=[30, 60, 120], shrinkage=[0.0, 10.0], idf=[True, False]),
    "als": _grid(factors=[32, 64], regularization=[0.1, 1.0, 5.0], alpha=[1.0, 5.0], iterations=[15], binary=[True]),
    # implicit's BPR samples negatives in proportion to popularity and overfits within tens of epochs
    "bpr": _grid(
        factors=[64, 128], learning_rate=[0.05], regularization=[0.01, 0.05], iterations=[10, 20, 40], num_threads=[1]
    ),
    "ease": _grid(
        l2=[200.0, 400.0, 700.0, 1000.0], dropout=[0.0, 0.25, 0.4], session_weight=[0.0, 0.5, 1.0], session_window=[10]
    ),
    "content": _grid(popularity_weight=[0.0, 0.3, 1.0, 3.0]),
    "two_tower": _grid(
        dim=[64, 128], hidden=[256], dropout=[0.5], learning_rate=[3e-3], batch_size=[128], epochs=[200]
    ),
}
# Cheaper search spaces for the large synthetic shop (speed benchmark).
FAST_GRIDS: dict[str, list[dict[str, Any]]] = {
    "popularity": [{"half_life_days": 14.0}],
    "item_knn": [{"neighbours": 100, "shrinkage": 10.0}],
    "user_knn": [{"neighbours": 50, "shrinkage": 10.0}],
    "als": [{"factors": 64, "regularization": 1.0, "alpha": 5.0, "iterations": 10}],
    "bpr": [{"factors": 64, "learning_rate": 0.05, "regularization": 0.01, "iterations": 50}],
    "ease": [{"l2": 500.0, "dropout": 0.25, "session_weight": 0.5, "max_items": 6000}],
    "content": [{"popularity_weight": 0.3}],
    "two_tower": [{"dim": 64, "hidden": 256, "epochs": 5, "batch_size": 1024, "validation_users": 0.02}],
}
CONTEXT_GRID = _grid(recency_weight=[0.0, 0.2, 0.5], markov_weight=[0.0, 0.2, 0.5], time_weight=[0.0, 0.1])


@dataclass
class Dataset:
    """Interactions (user_id, item_id, rating, timestamp seconds, weight) with side data."""

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    item_categorical: tuple[str, ...] = ()
    item_multi: dict[str, str] = field(default_factory=dict)
    user_numeric: tuple[str, ...] = ()
    user_categorical: tuple[str, ...] = ()
    category_column: str = ""
    binary: bool = True


@dataclass
class Space:
    """A training matrix with its fit context and the evaluation users of one test set."""

    X: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray
    context: dict[str, Any]
    eval_rows: np.ndarray
    relevant: list[set[int]]


def load_movielens(path: Path | None) -> Dataset:
    from ml.data.movielens import fetch, load
    from ml.data.wheels import cache_dir

    folder = (
        fetch(path, cache_dir() / "movielens-100k") if path is None or not (path / "ratings.parquet").exists() else path
    )
    ratings, items, users = load(folder)
    items = items.assign(
        decade=(items["year"] // 10 * 10).astype("Int64").astype("string"),
        first_genre=items["genres"].str.split("|").str[0],
    )
    return Dataset(
        "movielens-100k",
        ratings.assign(weight=1.0),
        items,
        users,
        item_categorical=("decade",),
        item_multi={"genres": "|"},
        user_numeric=("age",),
        user_categorical=("gender", "occupation"),
        category_column="first_genre",
        binary=True,
    )


def load_synthetic(size: str, seed: int, path: Path | None, out: Path) -> Dataset:
    from ml.columns import DEFAULT_EVENT_WEIGHTS
    from ml.shop.generate import write_shop

    folder = path or out / f"shop-{size}"
    if not (folder / "events.parquet").exists():
        with measure("generate") as st:
            write_shop(folder, size=size, seed=seed)
        log.info("generated the %s shop in %.1fs", size, st.seconds)
    cols = ["user_id", "item_id", "event_type", "event_time"]
    ev = pd.read_parquet(folder / "events.parquet", columns=cols)
    ev = ev[ev["event_type"].isin(list(DEFAULT_EVENT_WEIGHTS)) & ev["item_id"].notna()]
    t = pd.to_datetime(ev["event_time"], utc=True)
    inter = pd.DataFrame(
        {
            "user_id": ev["user_id"].astype(str),
            "item_id": ev["item_id"].astype(str),
            "rating": ev["event_type"].map(DEFAULT_EVENT_WEIGHTS).astype("float32"),
            "timestamp": (t - pd.Timestamp(0, tz="UTC")).dt.total_seconds().astype("int64"),
        }
    )
    inter["weight"] = inter["rating"]
    items = pd.read_parquet(folder / "items.parquet")
    parts = items["category_path"].astype(str).str.split(" > ")
    items = items.assign(
        category_l1=parts.str[0], category_l2=parts.str[:2].str.join(" > "), category_l3=parts.str.join(" > ")
    )
    users = pd.read_parquet(folder / "users.parquet") if (folder / "users.parquet").exists() else pd.DataFrame()
    return Dataset(
        f"synthetic-{size}",
        inter,
        items,
        users,
        item_categorical=("category_l1", "category_l2", "category_l3", "brand"),
        user_categorical=("country",) if "country" in users else (),
        category_column="category_l3",
        binary=False,
    )


def build_space(ds: Dataset, train: pd.DataFrame, test: pd.DataFrame) -> Space:
    """Training matrix (users and items of ``train``), context, and test relevance per user."""
    from ml.recommend import InteractionData
    from ml.recommend.features import events_context, item_category_codes, item_feature_matrix, user_feature_matrix

    data = InteractionData.from_frame(train, weight_col=None if ds.binary else "weight")
    X = data.matrix
    if ds.binary:
        X.data[:] = 1.0
    F, names = item_feature_matrix(ds.items, data.item_ids, ds.item_categorical, ds.item_multi)
    context: dict[str, Any] = {
        "events": events_context(train, data.user_index, data.item_index, "timestamp"),
        "item_features": F,
        "feature_names": names,
        "item_categories": item_category_codes(ds.items, data.item_ids, ds.category_column),
    }
    if len(ds.users) and (ds.user_numeric or ds.user_categorical):
        context["user_features"] = user_feature_matrix(ds.users, data.user_ids, ds.user_numeric, ds.user_categorical)
    te = test[test["user_id"].isin(data.user_index)]
    n_items = len(data.item_ids)
    unknown: dict[Any, int] = {}
    rel: dict[int, set[int]] = {}
    for u, i in zip(te["user_id"].map(data.user_index), te["item_id"], strict=True):
        j = data.item_index.get(i)
        if j is None:  # never in training: relevant but impossible to recommend
            j = unknown.setdefault(i, n_items + len(unknown))
        elif X[u, j] != 0:
            continue
        rel.setdefault(int(u), set()).add(int(j))
    rows = np.array(sorted(rel), dtype=np.int64)
    return Space(X, data.user_ids, data.item_ids, context, rows, [rel[int(r)] for r in rows])


def _scores_metrics(model: Any, space: Space, k: int) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    from ml.evaluate import EvalContext, evaluate
    from ml.evaluate.metrics import novelty_at_k

    idx, sc = model.recommend(space.X, space.eval_rows, k=k)
    pop = np.asarray((space.X > 0).sum(axis=0)).ravel() / max(space.X.shape[0], 1)
    ctx = EvalContext(n_items=space.X.shape[1], item_popularity=pop)
    m = evaluate(idx, space.relevant, k, ctx)
    m[f"novelty@{k}"] = novelty_at_k(idx, space.relevant, k, ctx)
    return m, idx, sc


def _fit(name: str, params: dict[str, Any], space: Space) -> Any:
    from ml.recommend import make_model

    return make_model(name, **params).fit(space.X, **space.context)


def _validation_split(train: pd.DataFrame, protocol: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from ml.evaluate import random_split, temporal_split

    if protocol == "random":
        return random_split(train, 0.75, seed=seed + 1)
    tr, va, _ = temporal_split(train, time_col="timestamp", test_share=0.25)
    return tr, va


def tune(
    models: list[str], grids: dict[str, list[dict[str, Any]]], val: Space, k: int, no_tune: bool
) -> tuple[dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]], dict[str, np.ndarray]]:
    """Best params per model by validation nDCG@k; also the trials and the validation
    z-scores of each best model (for fitting the blend weights)."""
    from ml.recommend.base import zscore_rows

    best: dict[str, dict[str, Any]] = {}
    trials: dict[str, list[dict[str, Any]]] = {}
    zval: dict[str, np.ndarray] = {}
    for name in models:
        if name in ("context", "blend"):
            continue
        grid = grids[name][:1] if no_tune else grids[name]
        results = []
        best_score, best_model = -1.0, None
        for params in grid:
            t0 = time.perf_counter()
            try:
                model = _fit(name, params, val)
            except ValueError as exc:  # e.g. content without item features
                log.warning("%s %s skipped: %s", name, params, exc)
                continue
            m, _, _ = _scores_metrics(model, val, k)
            results.append({"params": params, f"ndcg@{k}": m[f"ndcg@{k}"], "seconds": time.perf_counter() - t0})
            log.info("validation %s %s ndcg@%d=%.4f", name, params, k, m[f"ndcg@{k}"])
            if m[f"ndcg@{k}"] > best_score:
                best_score, best_model, best[name] = m[f"ndcg@{k}"], model, params
        trials[name] = results
        if best_model is not None:
            zval[name] = zscore_rows(best_model.scores(val.X, val.eval_rows), val.X[val.eval_rows])
    if "context" in models:
        base = max(
            (n for n in best if n not in ("popularity", "content", "two_tower")),
            key=lambda n: max(r[f"ndcg@{k}"] for r in trials[n]),
            default="item_knn",
        )
        grid = CONTEXT_GRID[:1] if no_tune else CONTEXT_GRID
        results, best_score = [], -1.0
        for g in grid:
            params = {"base": base, "base_params": best.get(base, {}), **g}
            m, _, _ = _scores_metrics(_fit("context", params, val), val, k)
            results.append({"params": params, f"ndcg@{k}": m[f"ndcg@{k}"]})
            if m[f"ndcg@{k}"] > best_score:
                best_score, best["context"] = m[f"ndcg@{k}"], params
        trials["context"] = results
    if "blend" in models:
        from ml.recommend.blend import fit_weights

        names = [n for n in BLEND_CANDIDATES if n in zval]
        names.sort(key=lambda n: -max(r[f"ndcg@{k}"] for r in trials[n]))
        if names:
            w, score = fit_weights([zval[n] for n in names], val.X[val.eval_rows], val.relevant, k, rounds=2)
            comps = [{"model": n, "params": best[n]} for n, wi in zip(names, w, strict=True) if wi]
            best["blend"] = {"components": comps, "weights": [float(wi) for wi in w if wi]}
            trials["blend"] = [{"params": best["blend"], f"ndcg@{k}": score}]
    return best, trials, zval


def _recs_frame(space: Space, idx: np.ndarray, sc: np.ndarray) -> pd.DataFrame:
    """The evaluated users' top-k as rows (user_id, item_id, rank, score), empty slots left out."""
    valid = idx >= 0
    return pd.DataFrame(
        {
            "user_id": np.repeat(space.user_ids[space.eval_rows], idx.shape[1])[valid.ravel()],
            "item_id": space.item_ids[idx[valid]],
            "rank": np.tile(np.arange(1, idx.shape[1] + 1), len(idx))[valid.ravel()],
            "score": sc[valid],
        }
    )


def run_protocol(
    ds: Dataset,
    train: pd.DataFrame,
    test: pd.DataFrame,
    protocol: str,
    models: list[str],
    grids: dict[str, list[dict[str, Any]]],
    out: Path,
    k: int,
    seed: int,
    no_tune: bool,
    no_validation: bool = False,
) -> list[dict[str, Any]]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "recs").mkdir(exist_ok=True)
    cols = ["user_id", "item_id", "rating", "timestamp"]
    train[cols].reset_index(drop=True).to_parquet(out / "train.parquet", index=False)
    test[cols].reset_index(drop=True).to_parquet(out / "test.parquet", index=False)
    with measure("tuning") as tuning_stage:
        if no_validation:  # speed runs: default params, no validation fits (and so no blend)
            best = {m: grids[m][0] for m in models if m in grids}
            if "context" in models:
                best["context"] = {"base": "item_knn", "base_params": grids["item_knn"][0], **CONTEXT_GRID[-1]}
            trials: dict[str, list[dict[str, Any]]] = {}
        else:
            vtr, vte = _validation_split(train, protocol, seed)
            best, trials, _ = tune(models, grids, build_space(ds, vtr, vte), k, no_tune)
    with measure("prepare") as prepare_stage:
        space = build_space(ds, train, test)
    rows: list[dict[str, Any]] = []
    payload: dict[str, Any] = {
        "dataset": ds.name,
        "protocol": protocol,
        "k": k,
        "seed": seed,
        "n_train": len(train),
        "n_test": len(test),
        "n_eval_users": len(space.eval_rows),
        "n_users_train": len(space.user_ids),
        "n_items_train": len(space.item_ids),
        "tuning_seconds": round(tuning_stage.seconds, 1),
        "prepare_seconds": round(prepare_stage.seconds, 1),
        "conventions": (
            "binary relevance; every test interaction of a user relevant; training items excluded; users with >= 1 "
            "relevant test item evaluated; precision = hits/k; recall = hits/|rel|; ndcg: 1/log2(1+rank) gains, "
            "ideal of min(|rel|, k); map@k normalised by min(|rel|, k); map_rel@k by |rel| (MS Recommenders)"
        ),
        "models": {},
        "validation_trials": trials,
    }
    for name in models:
        if name not in best:
            continue
        params = best[name]
        with measure(f"fit {name}") as fit_stage:
            model = _fit(name, params, space)
        t0 = time.perf_counter()
        metrics, idx, sc = _scores_metrics(model, space, k)
        rec_seconds = time.perf_counter() - t0
        _recs_frame(space, idx, sc).to_parquet(out / "recs" / f"{name}.parquet", index=False)
        val_scores = [r[f"ndcg@{k}"] for r in trials.get(name, []) if r["params"] == params]
        rows.append(
            {
                "model": name,
                **{m: round(v, 6) for m, v in metrics.items()},
                "fit_seconds": round(fit_stage.seconds, 3),
                "recommend_seconds": round(rec_seconds, 3),
                "peak_rss_mb": fit_stage.peak_rss_mb,
                f"validation_ndcg@{k}": round(val_scores[0], 6) if val_scores else None,
                "params": params,
            }
        )
        log.info("%s %s: ndcg@%d=%.4f fit %.1fs", protocol, name, k, metrics[f"ndcg@{k}"], fit_stage.seconds)
        payload["models"][name] = rows[-1]
        write_json(out, "metrics.json", payload)  # after every model, so a long run keeps what it measured
        del model
    write_json(out, "metrics.json", payload)
    return rows


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", choices=["movielens-100k", "synthetic"], default="movielens-100k")
    p.add_argument("--size", choices=SHOP_SIZES, default="large", help="synthetic shop size")
    p.add_argument("--path", type=Path, default=None, help="data folder (default: fetch/generate into the cache)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--models", default=",".join(ALL_MODELS), help="comma-separated subset of: " + ", ".join(ALL_MODELS))
    p.add_argument("--protocol", choices=["random", "temporal", "both"], default="both")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--no-tune", action="store_true", help="use each model's default params (first grid entry)")
    p.add_argument(
        "--no-validation",
        action="store_true",
        help="speed runs: default params without validation fits (the blend, which needs them, is skipped)",
    )


def run(args: argparse.Namespace) -> int:
    from ml.evaluate import random_split, temporal_split

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(ALL_MODELS))
    if unknown:
        raise UsageError(f"unknown models {unknown}; known: {', '.join(ALL_MODELS)}")
    out = Path(args.out)
    if args.dataset == "movielens-100k":
        ds, grids = load_movielens(args.path), GRIDS
    else:
        ds, grids = load_synthetic(args.size, args.seed, args.path, out), FAST_GRIDS
    protocols = ["random", "temporal"] if args.protocol == "both" else [args.protocol]
    summary: dict[str, list[dict[str, Any]]] = {}
    for protocol in protocols:
        if protocol == "random":
            train, test = random_split(ds.interactions, 0.75, seed=args.seed)
            target = out
        else:
            train, test, _ = temporal_split(ds.interactions, time_col="timestamp", test_share=0.25)
            target = out / "temporal"
        rows = run_protocol(
            ds, train, test, protocol, models, grids, target, args.k, args.seed, args.no_tune, args.no_validation
        )
        summary[protocol] = rows
        k = args.k
        cols = ["model", f"ndcg@{k}", f"precision@{k}", f"recall@{k}", f"map@{k}", f"map_rel@{k}", f"coverage@{k}"]
        cols += [f"validation_ndcg@{k}", "fit_seconds", "recommend_seconds", "peak_rss_mb"]
        print(f"\n{ds.name} — {protocol} split ({len(train)} train / {len(test)} test rows), k={k}")
        print(table(sorted(rows, key=lambda r: -r[f"ndcg@{k}"]), cols))
        if protocol == "random" and ds.name == "movielens-100k" and k == 10:
            ref = [{"model": f"published {n}", **v} for n, v in PUBLISHED.items()]
            print(table(ref, ["model", "ndcg@10", "precision@10", "recall@10", "map_rel@10"]))
    by_protocol = {p: {r["model"]: r for r in rows} for p, rows in summary.items()}
    write_json(out, "summary.json", by_protocol)
    chart(by_protocol, out, args.k)
    print(f"\nwrote {out} (summary.json, recsys.png)")
    print(json.dumps({p: max(r[f"ndcg@{args.k}"] for r in rows) for p, rows in summary.items() if rows}))
    return 0


def chart(by_protocol: dict[str, dict[str, dict[str, Any]]], out: Path, k: int) -> Path:
    """``recsys.png``: nDCG@k of every model, one bar per split."""
    from ml.bench.plots import grouped_bars

    models = sorted({m for rows in by_protocol.values() for m in rows})
    groups = {m: {p: rows[m][f"ndcg@{k}"] for p, rows in by_protocol.items() if m in rows} for m in models}
    return grouped_bars(out / "recsys.png", f"nDCG@{k} per model and split", groups, f"nDCG@{k}")
