"""``python -m ml bench assistant --size default --out DIR``: the shopping assistant's retrieval
on the shop's own searches.

The generated shop's searches carry the shopper's intent (the session's category, often with a
style word). The searches of the newest ``--test-share`` of the time span are the questions, the
share before them the validation questions; a question's relevant items are those its session
then viewed, carted or bought. Each question is read by ``ml.assistant.query`` (its hard
constraints filter the catalogue) and ranked by (a) BM25 over the item text, (b) MiniLM
retrieval, (c) MiniLM + personalisation with the user's history before the split
(``ml.assistant.retrieval``; its weight chosen on the validation questions, never on the test).
(d) adds the champion recommender's scores for the user (EASE, the production default's first
candidate, fitted on the interactions before each split), as each allowed item's place among the
allowed items, its weight chosen on the validation questions after (c)'s.
Also measured, not served: (d) plus ``w`` x the user's known-interest weight for each item's
category tag (``ml.tagging.profiles.InterestProfiler`` over the interactions before each split,
status ``known``), nDCG@10 per ``w`` on the validation and test questions (``known_interests``
in the JSON). On the default shop validation nDCG@10 is flat from 0 to 0.25 and falls beyond,
and every ``w`` > 0 lowers the test questions' nDCG@10, so the assistant does not add that term
(the history vector and the champion already carry those interests).
Reported: recall@10 and nDCG@10 per method, the relative nDCG@10 gain of (c) and (d) over (a)
(target: >= 20 %), and the latency of answering one question with (d), parse to ranked items,
p50 and p95 (target: p95 <= 150 ms on 2 cores). ``DIR/assistant.json`` and ``DIR/assistant.png``.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.bench import SHOP_SIZES, positive_int
from ml.bench.measure import measure, table, write_json

NAME = "assistant"
HELP = "shopping assistant retrieval: BM25 vs MiniLM vs MiniLM + personalisation (+ champion) (nDCG@10, latency)"
METHODS = ("bm25", "minilm", "minilm_personal", "minilm_personal_champion")
WEIGHT_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
CHAMPION_GRID = (0.0, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2)
INTEREST_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
ANSWER_EVENTS = ("view", "add_to_cart", "purchase")
HISTORY_EVENTS = ("view", "click", "add_to_cart", "purchase", "review")
log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", choices=SHOP_SIZES, default="default", help="shop size")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--test-share", type=float, default=0.2, help="newest share of the time span: test questions")
    p.add_argument("--max-questions", type=positive_int, default=2000, help="test questions sampled at most")
    p.add_argument("--k", type=positive_int, default=10)
    p.add_argument("--out", type=Path, required=True)


def questions(events: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Searches in [start, end) with the items their session then viewed, carted or bought."""
    ev = events.assign(at=pd.to_datetime(events["event_time"], utc=True))
    search = ev[(ev["event_type"] == "search") & (ev["at"] >= start) & (ev["at"] < end) & ev["query"].notna()]
    after = ev[ev["event_type"].isin(ANSWER_EVENTS) & ev["item_id"].notna()][["session_id", "item_id", "at"]]
    pairs = search[["event_id", "session_id", "user_id", "query", "at"]].merge(
        after, on="session_id", suffixes=("", "_item")
    )
    pairs = pairs[pairs["at_item"] >= pairs["at"]]
    rel = pairs.groupby("event_id")["item_id"].agg(lambda s: sorted(set(s)))
    out = search.set_index("event_id").loc[rel.index, ["user_id", "query", "at"]]
    return out.assign(relevant=rel).reset_index()


def ranked_matrix(lists: list[np.ndarray], k: int) -> np.ndarray:
    """Rankings of up to ``k`` items as one (n, k) matrix, -1 where a ranking is shorter (the
    shape ``ml.evaluate.metrics`` reads)."""
    out = np.full((len(lists), k), -1, dtype=np.int64)
    for n, r in enumerate(lists):
        out[n, : min(len(r), k)] = np.asarray(r[:k], dtype=np.int64)
    return out


def run(args: argparse.Namespace) -> int:
    from ml.assistant.query import QuestionError, Vocabulary, parse
    from ml.assistant.retrieval import (
        BM25,
        allowed,
        champion_scores,
        encode,
        personalised,
        rank_share,
        top_k,
        user_vector,
    )
    from ml.assistant.service import catalogue
    from ml.shop import taxonomy as tx
    from ml.shop.generate import generate
    from ml.tagging import encoder as enc

    with measure("assistant") as stage:
        tables = generate(size=args.size, seed=args.seed)
        items = catalogue(tables["items"])
        index = {str(i): n for n, i in enumerate(items["item_id"])}
        events = tables["events"]
        at = pd.to_datetime(events["event_time"], utc=True)
        val_start, test_start, t1 = _split_bounds(at, args.test_share)
        vocab = Vocabulary.from_items(items, items["text"].tolist(), tuple(tx.STYLES))
        bm25 = BM25().fit(items["text"].tolist())
        encoder = enc.load()
        emb = encode(encoder, items["text"].tolist())
        sets = _question_sets(events, (val_start, test_start, t1), args.max_questions, args.seed)
        item_tag = _category_tags(items)
        before = {
            name: _Before.of(events, at, start, index, item_tag)
            for name, start in (("validation", val_start), ("test", test_start))
        }

        def answer(q_text: str, user: str, split: str) -> dict[str, Any] | None:
            """One question's parts: BM25's ranking, the MiniLM cosines, the user's cosines."""
            try:
                q = parse(q_text, vocab)
            except QuestionError:
                return None
            mask = allowed(items, q)
            cos = emb @ encode(encoder, [q.text])[0]
            rows, w = _history(before[split].history, user)
            uv = user_vector(emb, rows, w)
            return {
                "bm25": top_k(bm25.scores(q.text), mask, args.k),
                "cos": cos,
                "user": np.zeros_like(cos) if uv is None else emb @ uv,
                "champion": rank_share(champion_scores(before[split].champion, rows, w), mask),
                "known": item_tag.map(before[split].known.get(str(user), {})).fillna(0.0).to_numpy(np.float64),
                "mask": mask,
            }

        val = _answered(sets["validation"], answer, "validation", index)
        weight, _ = _choose(val, args.k, WEIGHT_GRID, lambda a, w: a["cos"] + w * a["user"], "personal")
        champion_weight, _ = _choose(val, args.k, CHAMPION_GRID, lambda a, w: _combined(a, weight, w), "champion")
        test = _answered(sets["test"], answer, "test", index)
        results = _evaluate(test, weight, champion_weight, args.k)
        known_interests = _known_interest_curves(val, test, args.k, weight, champion_weight)

        def full_answer(q_text: str, user: str) -> None:
            """What one question costs end to end: parse, filter, embed, personalise, rank."""
            q = parse(q_text, vocab)
            cos = emb @ encode(encoder, [q.text])[0]
            rows, w = _history(before["test"].history, user)
            mask = allowed(items, q)
            scores = personalised(cos, emb, user_vector(emb, rows, w), weight)
            champ = rank_share(champion_scores(before["test"].champion, rows, w), mask)
            top_k(scores + champion_weight * champ, mask, args.k)

        latencies = _latencies_ms(sets["test"].head(200), full_answer)
    questions_seen = {"validation": len(sets["validation"]), "test": len(sets["test"])}
    payload = _payload(args, questions_seen, len(test), results, (weight, champion_weight), latencies)
    payload |= {"known_interests": known_interests, "wall_seconds": round(stage.seconds, 1)}
    payload["peak_rss_mb"] = round(stage.peak_rss_mb, 1)
    write_json(args.out, "assistant.json", payload)
    png = _plot(payload, Path(args.out) / "assistant.png")
    _print_report(payload, results, png, args.k)
    return 0


@dataclass(frozen=True)
class _Before:
    """What is known of the users before a split: their histories (item rows, weights), the
    champion fitted on them and their known interests (tag -> weight)."""

    history: dict[str, tuple[np.ndarray, np.ndarray]]
    champion: Any
    known: dict[str, dict[str, float]]

    @classmethod
    def of(
        cls, events: pd.DataFrame, at: pd.Series, start: pd.Timestamp, index: dict[str, int], item_tag: pd.Series
    ) -> _Before:
        history = _histories(events, at, start, index)
        return cls(history, _champion(history, len(index)), _known_interests(events, at, start, item_tag))


def _known_interest_curves(
    val: list[tuple[dict[str, Any], set[int]]],
    test: list[tuple[dict[str, Any], set[int]]],
    k: int,
    personal: float,
    champion: float,
) -> dict[str, Any]:
    """(d) plus ``w`` x the user's known-interest weight for each item's category: the ``w`` of
    ``INTEREST_GRID`` validation picks, and nDCG@k per ``w`` on the validation and test questions."""

    def with_interests(a: dict[str, Any], w: float) -> np.ndarray:
        return _combined(a, personal, champion) + w * a["known"]

    chosen, on_val = _choose(val, k, INTEREST_GRID, with_interests, "known-interest")
    _, on_test = _choose(test, k, INTEREST_GRID, with_interests, "known-interest (test)")
    return {"chosen_weight": chosen, f"validation_ndcg@{k}": on_val, f"test_ndcg@{k}": on_test}


def _split_bounds(at: pd.Series, test_share: float) -> tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp]:
    """(validation start, test start, end): the newest ``test_share`` of the time span is the
    test split, the half as long before it the validation split."""
    t0, t1 = at.min(), at.max()
    test_start = t1 - (t1 - t0) * test_share
    return test_start - (t1 - t0) * test_share / 2, test_start, t1


def _question_sets(
    events: pd.DataFrame, bounds: tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp], most: int, seed: int
) -> dict[str, pd.DataFrame]:
    """The validation questions (between the first two ``bounds``) and at most ``most`` test
    questions (between the last two), sampled with ``seed``."""
    val_start, test_start, end = bounds
    test = questions(events, test_start, end)
    if len(test) > most:
        test = test.sample(most, random_state=seed).sort_values("at")
    return {"validation": questions(events, val_start, test_start), "test": test}


def _payload(
    args: argparse.Namespace,
    asked: dict[str, int],
    answered: int,
    results: dict[str, dict[str, float]],
    weights: tuple[float, float],
    latencies: list[float],
) -> dict[str, Any]:
    """``assistant.json``'s figures: questions, the chosen weights, each method's metrics, the
    gains over BM25 and the latency percentiles."""
    key = f"ndcg@{args.k}"
    bm25 = max(results["bm25"][key], 1e-12)
    return {
        "size": args.size,
        "questions": {**asked, "unanswerable": asked["test"] - answered},
        "personal_weight": weights[0],
        "champion_weight": weights[1],
        "champion": "EASE (l2 500) on the interactions before each split",
        "methods": results,
        "gain_personal_over_bm25": round(results["minilm_personal"][key] / bm25 - 1.0, 4),
        "gain_personal_champion_over_bm25": round(results["minilm_personal_champion"][key] / bm25 - 1.0, 4),
        "latency_ms": {"p50": float(np.percentile(latencies, 50)), "p95": float(np.percentile(latencies, 95))},
    }


def _history(histories: dict[str, tuple[np.ndarray, np.ndarray]], user: str) -> tuple[np.ndarray, np.ndarray]:
    """(item rows, weights) of ``user``'s history; empty for a user without one."""
    return histories.get(user, (np.zeros(0, np.int64), np.zeros(0)))


def _histories(
    events: pd.DataFrame, at: pd.Series, before: pd.Timestamp, index: dict[str, int]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per user, (item rows, weights) of the interactions before ``before`` (the split)."""
    h = _interactions_before(events, at, before)
    h = h.assign(row=h["item_id"].map(index)).dropna(subset=["row"])
    h = h.groupby(["user_id", "row"], as_index=False)["weight"].sum()
    return {u: (g["row"].to_numpy(np.int64), g["weight"].to_numpy(np.float64)) for u, g in h.groupby("user_id")}


def _interactions_before(events: pd.DataFrame, at: pd.Series, before: pd.Timestamp) -> pd.DataFrame:
    """user_id, item_id, event_at and weight (the implicit-feedback weight of its event type) of
    every item interaction before ``before``."""
    from ml.columns import DEFAULT_EVENT_WEIGHTS

    h = events[(at < before) & events["event_type"].isin(HISTORY_EVENTS) & events["item_id"].notna()]
    return pd.DataFrame(
        {
            "user_id": h["user_id"].astype(str),
            "item_id": h["item_id"].astype(str),
            "event_at": at[h.index],
            "weight": h["event_type"].map(DEFAULT_EVENT_WEIGHTS),
        }
    )


def _print_report(payload: dict[str, Any], results: dict[str, Any], png: Path, k: int) -> None:
    q = payload["questions"]
    print(
        f"{q['test']:,} test questions of the {payload['size']} shop ({q['unanswerable']} unanswerable); "
        f"personal weight {payload['personal_weight']}"
    )
    print(table([{"method": m, **r} for m, r in results.items()]))
    lat = payload["latency_ms"]
    print(
        f"(c) over (a): {payload['gain_personal_over_bm25']:+.1%} nDCG@{k}; (d) over (a): "
        f"{payload['gain_personal_champion_over_bm25']:+.1%} (champion weight {payload['champion_weight']}); "
        f"latency of (d) p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms"
    )
    known = payload["known_interests"]
    curve = ", ".join(f"{w} {v:.4f}" for w, v in known[f"test_ndcg@{k}"].items())
    print(f"(d) + w x known interests, test nDCG@{k} by w: {curve} (validation picks {known['chosen_weight']})")
    print(f"wrote {png.parent / 'assistant.json'} and {png}")


def _latencies_ms(qs: pd.DataFrame, full_answer: Any) -> list[float]:
    """Milliseconds ``full_answer(question, user)`` takes for each readable question of ``qs``."""
    from ml.assistant.query import QuestionError

    out = []
    for q_text, user in zip(qs["query"], qs["user_id"], strict=True):
        t = time.perf_counter()
        try:
            full_answer(q_text, user)
        except QuestionError:
            continue
        out.append((time.perf_counter() - t) * 1000.0)
    return out


def _answered(
    qs: pd.DataFrame, answer: Any, split: str, index: dict[str, int]
) -> list[tuple[dict[str, Any], set[int]]]:
    """(answer parts, relevant item rows) of each question the assistant could read."""
    out = []
    for q, u, rel in zip(qs["query"], qs["user_id"], qs["relevant"], strict=True):
        parts = answer(q, u, split)
        relevant = {index[str(i)] for i in rel if str(i) in index}
        if parts is not None and relevant:
            out.append((parts, relevant))
    return out


def _choose(
    answered: list[tuple[dict[str, Any], set[int]]],
    k: int,
    grid: tuple[float, ...],
    scores: Any,
    what: str,
) -> tuple[float, dict[str, float]]:
    """The weight of ``grid`` whose ranking by ``scores(answer parts, weight)`` has the best
    nDCG@k over ``answered`` (the first of equals), and every weight's nDCG@k."""
    from ml.assistant.retrieval import top_k
    from ml.evaluate.metrics import ndcg_at_k

    relevant = [rel for _, rel in answered]
    curve: dict[str, float] = {}
    best, best_score = grid[0], -1.0
    for weight in grid:
        ranked = [top_k(scores(a, weight), a["mask"], k) for a, _ in answered]
        score = ndcg_at_k(ranked_matrix(ranked, k), relevant, k) if answered else 0.0
        curve[str(weight)] = round(float(score), 4)
        log.info("%s weight %s: nDCG@%d %.4f", what, weight, k, score)
        if score > best_score:
            best, best_score = weight, score
    return best, curve


def _combined(a: dict[str, Any], personal: float, champion: float) -> np.ndarray:
    """The question's scores with the personal weight and the champion's rank share."""
    return a["cos"] + personal * a["user"] + champion * a["champion"]


def _category_tags(items: pd.DataFrame) -> pd.Series:
    """Each item's category tag (``cat:<department>_<leaf>``, as the assistant's exploration
    slot and the interest profiles name it), indexed by item id in ``items``' order."""
    from ml.explore.candidates import category_tag

    path = items["category_path"].str.split(" > ")
    return pd.Series([category_tag(p[0], p[-1]) for p in path], index=items["item_id"].to_numpy())


def _known_interests(
    events: pd.DataFrame, at: pd.Series, before: pd.Timestamp, item_tag: pd.Series
) -> dict[str, dict[str, float]]:
    """Per user, the known interests (tag -> weight) that ``InterestProfiler`` finds in the
    interactions before ``before``, with each item's category tag as its one tag."""
    from ml.tagging.profiles import InterestProfiler
    from ml.tagging.vocabulary import Vocabulary

    tags = pd.DataFrame({"item_id": item_tag.index, "tag": item_tag.to_numpy(), "score": 1.0}).dropna()
    p = InterestProfiler().profile(_interactions_before(events, at, before), tags, Vocabulary.from_taxonomy(), before)
    p = p[p["status"] == "known"]
    return {str(u): dict(zip(g["tag"], g["weight"], strict=True)) for u, g in p.groupby("user_id")}


def _champion(histories: dict[str, tuple[np.ndarray, np.ndarray]], n_items: int) -> Any:
    """EASE (the production default's first candidate) fitted on the interactions before a split."""
    import scipy.sparse as sp

    from ml.recommend.linear import EASE

    parts = list(histories.values())
    rows = np.concatenate([np.full(len(r), n, np.int64) for n, (r, _) in enumerate(parts)] + [np.zeros(0, np.int64)])
    cols = np.concatenate([r for r, _ in parts] + [np.zeros(0, np.int64)])
    vals = np.concatenate([w for _, w in parts] + [np.zeros(0)])
    X = sp.csr_matrix((vals, (rows, cols)), shape=(len(parts), n_items))
    return EASE(l2=500.0).fit(X)


def _evaluate(
    answered: list[tuple[dict[str, Any], set[int]]], weight: float, champion_weight: float, k: int
) -> dict[str, dict[str, float]]:
    """Mean nDCG@k and recall@k of the four methods over the answered test questions."""
    from ml.assistant.retrieval import top_k
    from ml.evaluate.metrics import ndcg_at_k, recall_at_k

    relevant = [rel for _, rel in answered]
    ranked = {
        "bm25": [a["bm25"] for a, _ in answered],
        "minilm": [top_k(a["cos"], a["mask"], k) for a, _ in answered],
        "minilm_personal": [top_k(a["cos"] + weight * a["user"], a["mask"], k) for a, _ in answered],
        "minilm_personal_champion": [top_k(_combined(a, weight, champion_weight), a["mask"], k) for a, _ in answered],
    }
    out = {}
    for method, lists in ranked.items():
        matrix = ranked_matrix(lists, k)
        out[method] = {
            f"ndcg@{k}": ndcg_at_k(matrix, relevant, k) if answered else 0.0,
            f"recall@{k}": recall_at_k(matrix, relevant, k) if answered else 0.0,
        }
    return out


def _plot(payload: dict[str, Any], path: Path) -> Path:
    from ml.bench.plots import grouped_bars

    groups = {m: {k: v for k, v in r.items()} for m, r in payload["methods"].items()}
    return grouped_bars(path, f"Assistant retrieval, {payload['size']} shop", groups, "score")
