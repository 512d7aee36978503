"""``python -m ml bench reviews --size default --out DIR``: review sentiment models on the shop's
own reviews, with ratings as weak labels.

The generated shop's reviews are split by time (the newest ``--test-share`` for testing). Each
model (``ml.reviews.models``: the TF-IDF + logistic regression baseline and fine-tuned MiniLM) is
fitted on the training reviews' text with the rating labels (1-2 negative, 3 neutral, 4-5
positive) and scored by macro F1 against the test reviews' rating labels. Whether the signal
carries what it should: per item with at least ``--min-reviews`` test reviews, the Spearman
correlation of the mean predicted sentiment (P(positive) - P(negative)) with the item's hidden
quality (``_ground_truth``; for this measurement only), next to that of the mean rating.
Aspects (``ml.reviews.aspects``): each generated sentence is one of the generator's phrasings,
which say what it is about and whether it praises (for this measurement only); reported are
the share of aspect sentences given their aspect, of the other sentences ("Love it.") given
none, and per model the share of correctly placed sentences whose tone sign is right.
``DIR/reviews.json`` and ``DIR/reviews.png`` (macro F1 per model).
"""

from __future__ import annotations

import argparse
import functools
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.bench import SHOP_SIZES, positive_int
from ml.bench.measure import measure, table, write_json

NAME = "reviews"
HELP = "review sentiment: TF-IDF baseline vs fine-tuned MiniLM (macro F1 on rating labels)"
MODEL_NAMES = ("tfidf_logreg", "minilm")
log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", choices=SHOP_SIZES, default="default", help="shop size")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--test-share", type=float, default=0.2, help="newest share of reviews held out")
    p.add_argument("--models", default=",".join(MODEL_NAMES), help="comma-separated review models")
    p.add_argument("--epochs", type=positive_int, default=2, help="MiniLM fine-tuning epochs")
    p.add_argument("--max-train", type=positive_int, default=4000, help="MiniLM: most training reviews used")
    p.add_argument("--min-reviews", type=positive_int, default=3, help="test reviews an item needs to be correlated")
    p.add_argument("--out", type=Path, required=True)


def split_reviews(events: pd.DataFrame, test_share: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reviews with text and rating, oldest first, cut so the newest ``test_share`` is the test."""
    if not 0.0 < test_share < 1.0:
        raise ValueError(f"--test-share must be in (0, 1), got {test_share}")
    rev = events[(events["event_type"] == "review") & events["review_text"].notna() & events["rating"].notna()]
    rev = rev.sort_values(["event_time", "event_id"], kind="stable").reset_index(drop=True)
    cut = round(len(rev) * (1.0 - test_share))
    if cut < 10 or len(rev) - cut < 10:
        raise ValueError(f"too few reviews to split ({len(rev)}): use a larger --size")
    return rev.iloc[:cut], rev.iloc[cut:]


def model_params(name: str, args: argparse.Namespace) -> dict[str, Any]:
    return {"epochs": args.epochs, "max_train": args.max_train} if name == "minilm" else {}


def run(args: argparse.Namespace) -> int:
    from sklearn.metrics import f1_score

    from ml.reviews.labels import LABELS, rating_labels, sentiment_score
    from ml.reviews.models import make_model
    from ml.shop.generate import generate

    names = [n.strip() for n in args.models.split(",") if n.strip()]
    for n in names:
        make_model(n)  # unknown names fail before the shop is generated
    with measure("reviews") as stage:
        tables = generate(size=args.size, seed=args.seed)
        train, test = split_reviews(tables["events"], args.test_share)
        y_train = rating_labels(train["rating"].to_numpy())
        y_test = rating_labels(test["rating"].to_numpy())
        quality = tables["truth_item_quality"].set_index("item_id")["quality"]
        results: dict[str, Any] = {}
        for name in names:
            t0 = time.perf_counter()
            model = make_model(name, **model_params(name, args)).fit(train["review_text"].tolist(), y_train)
            fit_s = time.perf_counter() - t0
            proba = model.predict_proba(test["review_text"].tolist())
            pred = proba.argmax(axis=1)
            results[name] = {
                "macro_f1": float(f1_score(y_test, pred, average="macro", labels=[0, 1, 2])),
                "f1_by_label": dict(
                    zip(LABELS, f1_score(y_test, pred, average=None, labels=[0, 1, 2]).tolist(), strict=True)
                ),
                "accuracy": float((pred == y_test).mean()),
                "quality_spearman": _item_correlation(test, sentiment_score(proba), quality, args.min_reviews),
                "fit_seconds": round(fit_s, 1),
                "params": model.get_params(),
                "aspect_tone_agreement": _aspect_tone(test, model),
            }
            log.info("%s: macro F1 %.4f (%.0f s)", name, results[name]["macro_f1"], fit_s)
        rating_corr = _item_correlation(test, test["rating"].to_numpy(np.float64), quality, args.min_reviews)
    payload = {
        "size": args.size,
        "seed": args.seed,
        "reviews": {"train": len(train), "test": len(test)},
        "test_labels": dict(zip(LABELS, np.bincount(y_test, minlength=3).tolist(), strict=True)),
        "models": results,
        "mean_rating_quality_spearman": rating_corr,
        "aspects": aspect_detection(test["review_text"]),
        "wall_seconds": round(stage.seconds, 1),
        "peak_rss_mb": round(stage.peak_rss_mb, 1),
    }
    write_json(args.out, "reviews.json", payload)
    png = _plot(payload, Path(args.out) / "reviews.png")
    rows = [
        {
            "model": n,
            "macro F1": r["macro_f1"],
            "accuracy": r["accuracy"],
            "quality rho": r["quality_spearman"],
            "aspect tone": r["aspect_tone_agreement"],
            "fit s": r["fit_seconds"],
        }
        for n, r in results.items()
    ]
    print(f"{len(train):,} training and {len(test):,} test reviews of the {args.size} shop")
    print(table(rows))
    print(f"mean rating vs hidden quality: rho {rating_corr:.4f}")
    a = payload["aspects"]
    print(
        f"aspects: {a['aspect_sentences']:,} aspect sentences, {a['aspect_recall']:.3f} given their aspect; "
        f"{a['other_sentences']:,} others, {a['others_without_aspect']:.3f} given none"
    )
    print(f"wrote {Path(args.out) / 'reviews.json'} and {png}")
    return 0


@functools.cache
def _phrasings() -> dict[str, tuple[str, bool]]:
    """The generator's phrasings (lower case, no end mark) -> (aspect, praises)."""
    from ml.shop.reviews import ASPECTS

    return {
        s.lower(): (aspect, good)
        for aspect, (praise, criticism) in ASPECTS.items()
        for good, said in ((True, praise), (False, criticism))
        for s in said
    }


def _said(sentence: str) -> tuple[str, bool] | None:
    """(aspect, praises) of a generated sentence; None for an opener ("Love it.")."""
    return _phrasings().get(sentence.rstrip(".!?").lower())


def aspect_detection(texts: pd.Series) -> dict[str, Any]:
    """How ``ml.reviews.aspects`` places the generated sentences (see the module docstring)."""
    from ml.reviews.aspects import aspect_of, sentences

    hit = n_aspect = none = n_other = 0
    for text in texts:
        for s in sentences(text):
            true = _said(s)
            if true is None:
                n_other += 1
                none += aspect_of(s) is None
            else:
                n_aspect += 1
                hit += aspect_of(s) == true[0]
    return {
        "aspect_sentences": n_aspect,
        "aspect_recall": round(hit / n_aspect, 4) if n_aspect else float("nan"),
        "other_sentences": n_other,
        "others_without_aspect": round(none / n_other, 4) if n_other else float("nan"),
    }


def _aspect_tone(test: pd.DataFrame, model: Any) -> float:
    """Share of the test sentences placed on their true aspect whose tone sign is right."""
    from ml.reviews.aspects import aspect_rows, tone_agreement

    rows = aspect_rows(test.assign(event_id=test["event_id"].astype(str)), model)
    true = [_said(s) for s in rows["sentence"]]
    placed = [t is not None and t[0] == a for t, a in zip(true, rows["aspect"], strict=True)]
    praised = [t[1] for t, ok in zip(true, placed, strict=True) if ok and t is not None]
    return round(tone_agreement(rows["sentiment"].to_numpy()[placed], praised), 4)


def _item_correlation(test: pd.DataFrame, values: np.ndarray, quality: pd.Series, min_reviews: int) -> float:
    """Spearman correlation, over items with ``min_reviews`` test reviews, of the mean of
    ``values`` with the item's hidden quality."""
    per_item = pd.DataFrame({"item_id": test["item_id"].to_numpy(), "v": values}).groupby("item_id")["v"]
    agg = per_item.agg(["mean", "size"])
    agg = agg[agg["size"] >= min_reviews]
    if len(agg) < 3:
        return float("nan")
    return float(agg["mean"].corr(quality.reindex(agg.index), method="spearman"))


def _plot(payload: dict[str, Any], path: Path) -> Path:
    from ml.bench.plots import grouped_bars

    groups = {
        name: {"macro F1": r["macro_f1"], "item quality rho": r["quality_spearman"]}
        for name, r in payload["models"].items()
    }
    groups["mean rating"] = {"item quality rho": payload["mean_rating_quality_spearman"]}
    return grouped_bars(path, f"Review sentiment, {payload['size']} shop", groups, "score")
