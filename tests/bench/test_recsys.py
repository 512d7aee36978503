"""MovieLens reading (both published file formats) and the recsys benchmark end to end on a
small MovieLens-shaped data set built in code (the real one is fetched by `data fetch`)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.data import movielens

pytestmark = pytest.mark.slow

GENRES = ["Action", "Comedy", "Drama", "Horror"]


def _ratings(n_users: int = 60, n_items: int = 40, per_user: int = 12, seed: int = 0) -> pd.DataFrame:
    """Users prefer the genre of their group; ratings arrive in sessions over 60 days."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, n_users + 1):
        g = u % len(GENRES)
        liked = [i for i in range(1, n_items + 1) if i % len(GENRES) == g]
        others = [i for i in range(1, n_items + 1) if i % len(GENRES) != g]
        picks = list(rng.choice(liked, size=per_user - 3, replace=False)) + list(
            rng.choice(others, size=3, replace=False)
        )
        start = 880_000_000 + int(rng.integers(0, 60 * 86400))
        for j, i in enumerate(picks):  # two sessions a month apart
            rows.append(
                (u, int(i), int(rng.integers(1, 6)), start + 30 * j + (30 * 86400 if j >= per_user // 2 else 0))
            )
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


def write_recbole(folder: Path, ratings: pd.DataFrame, n_items: int = 40, n_users: int = 60) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "ml-100k.inter", "w") as f:
        f.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        for r in ratings.itertuples(index=False):
            f.write(f"{r.user_id}\t{r.item_id}\t{r.rating}\t{r.timestamp}\n")
    with open(folder / "ml-100k.item", "w") as f:
        f.write("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n")
        for i in range(1, n_items + 1):
            f.write(f"{i}\tMovie {i}\t{1990 + i % 8}\t{GENRES[i % len(GENRES)]}\n")
    with open(folder / "ml-100k.user", "w") as f:
        f.write("user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n")
        for u in range(1, n_users + 1):
            f.write(f"{u}\t{20 + u % 30}\t{'MF'[u % 2]}\tjob{u % 3}\t0000{u}\n")
    return folder


def write_grouplens(folder: Path, ratings: pd.DataFrame, n_items: int = 40, n_users: int = 60) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    ratings.to_csv(folder / "u.data", sep="\t", header=False, index=False)
    all_genres = movielens.GENRES
    with open(folder / "u.item", "w", encoding="latin-1") as f:
        for i in range(1, n_items + 1):
            flags = ["1" if g == GENRES[i % len(GENRES)] else "0" for g in all_genres]
            f.write(f"{i}|Movie {i} (1995)|01-Jan-{1990 + i % 8}||http://x|" + "|".join(flags) + "\n")
    with open(folder / "u.user", "w") as f:
        for u in range(1, n_users + 1):
            f.write(f"{u}|{20 + u % 30}|{'MF'[u % 2]}|job{u % 3}|0000{u}\n")
    return folder


@pytest.mark.parametrize("writer", [write_recbole, write_grouplens])
def test_both_published_formats_normalise_to_the_same_frames(tmp_path, writer):
    ratings = _ratings()
    src = writer(tmp_path / "src", ratings)
    out = movielens.fetch(src, tmp_path / "out", expected_ratings=len(ratings))
    r, items, users = movielens.load(out)
    assert list(r.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert len(r) == len(ratings) and r["rating"].between(1, 5).all()
    assert r["user_id"].map(type).eq(str).all()
    assert items.loc[items["item_id"] == "1", "genres"].item() == GENRES[1]
    assert items.loc[items["item_id"] == "3", "year"].item() == 1993
    assert set(users.columns) >= {"user_id", "age", "gender", "occupation"}


def test_truncated_or_bad_data_is_rejected_with_a_clear_error(tmp_path):
    ratings = _ratings()
    src = write_recbole(tmp_path / "src", ratings)
    with pytest.raises(ValueError, match=f"expected 100000 ratings, found {len(ratings)}"):
        movielens.fetch(src, tmp_path / "out")
    bad = ratings.copy()
    bad.loc[5, "rating"] = 9
    src2 = write_recbole(tmp_path / "bad", bad)
    with pytest.raises(ValueError, match=r"rating out of 1\.\.5 at row 5"):
        movielens.fetch(src2, tmp_path / "out2", expected_ratings=None)
    with pytest.raises(FileNotFoundError, match="no MovieLens-100k files"):
        movielens.fetch(tmp_path, tmp_path / "out3")


def test_bench_writes_splits_recommendations_and_metrics(tmp_path, capsys):
    from ml.cli import main

    ratings = _ratings()
    data = movielens.fetch(write_recbole(tmp_path / "src", ratings), tmp_path / "ml", expected_ratings=len(ratings))
    out = tmp_path / "bench"
    models = "popularity,item_knn,ease,content,context,blend"
    rc = main(["bench", "recsys", "--path", str(data), "--out", str(out), "--models", models])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "random split" in printed and "temporal split" in printed and "published BiVAE" in printed
    for folder in (out, out / "temporal"):
        train = pd.read_parquet(folder / "train.parquet")
        test = pd.read_parquet(folder / "test.parquet")
        assert list(train.columns) == ["user_id", "item_id", "rating", "timestamp"]
        assert len(train) + len(test) == len(ratings)
        assert train.merge(test, on=["user_id", "item_id"]).empty
        metrics = json.loads((folder / "metrics.json").read_text())
        for name in models.split(","):
            m = metrics["models"][name]
            for key in ("ndcg@10", "precision@10", "recall@10", "map@10", "coverage@10"):
                assert 0.0 <= m[key] <= 1.0, (name, key)
            assert m["fit_seconds"] >= 0 and m["recommend_seconds"] >= 0
            recs = pd.read_parquet(folder / "recs" / f"{name}.parquet")
            assert list(recs.columns) == ["user_id", "item_id", "rank", "score"]
            assert recs.groupby("user_id")["rank"].min().eq(1).all()
            assert recs.merge(train, on=["user_id", "item_id"]).empty  # training items excluded
        assert metrics["validation_trials"]["ease"], "hyper-parameters were not searched"
    random_metrics = json.loads((out / "metrics.json").read_text())
    split = pd.read_parquet(out / "train.parquet").groupby("user_id").size()
    assert (split == 9).all()  # 75 % of 12 ratings per user, per user
    assert random_metrics["models"]["ease"]["ndcg@10"] > random_metrics["models"]["popularity"]["ndcg@10"]
    # the blend's weights were fitted on validation data carved from training
    assert random_metrics["models"]["blend"]["params"]["weights"][0] == 1.0
