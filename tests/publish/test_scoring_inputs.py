"""``load_decayed_interactions``: the decayed user x item weights, the users and the excluded
pairs that scoring reads, aggregated by the warehouse (DuckDB and PostgreSQL), against
``decayed`` over every event in pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.features.interactions import decayed, load_decayed_interactions, load_interaction_events
from ml.warehouse import Warehouse

HALF_LIFE = 7.0


def _events() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 400
    start = pd.Timestamp("2026-10-01 00:00:00")
    # sub-second times, repeated pairs, several event types, one user with only purchases
    at = start + pd.to_timedelta(rng.integers(0, 30 * 86400 * 1_000_000, n), unit="us")
    df = pd.DataFrame(
        {
            "user_id": [f"u{x}" for x in rng.integers(0, 25, n)],
            "item_id": [f"i{x}" for x in rng.integers(0, 40, n)],
            "event_type": rng.choice(["view", "click", "add_to_cart", "purchase"], n),
            "event_at": at,
            "weight": rng.choice([1.0, 2.0, 3.0, 5.0], n),
        }
    )
    extra = pd.DataFrame(
        {
            "user_id": ["buyer", "buyer"],
            "item_id": ["i1", "i1"],
            "event_type": ["purchase", "purchase"],
            "event_at": [start, start + pd.Timedelta(hours=1)],
            "weight": [5.0, 5.0],
        }
    )
    return pd.concat([df, extra], ignore_index=True)


def _load(wh: Warehouse, events: pd.DataFrame) -> None:
    with wh.connect() as con:
        wh.execute(con, "create schema if not exists marts")
        wh.execute(
            con,
            "create table marts.interaction_events (user_id varchar, item_id varchar, event_type varchar, "
            "event_at timestamp, weight double precision)",
        )
        wh.append_df(con, "marts.interaction_events", events)


def _check(wh: Warehouse) -> None:
    events = load_interaction_events(wh)
    got = load_decayed_interactions(wh, HALF_LIFE, ("purchase",))
    as_of = events["event_at"].max()
    assert got.as_of == as_of
    want = decayed(events, as_of, HALF_LIFE).set_index(["user_id", "item_id"])["weight"].sort_index()
    have = got.frame.set_index(["user_id", "item_id"])["weight"].sort_index()
    assert list(have.index) == list(want.index)
    np.testing.assert_allclose(have.to_numpy(), want.to_numpy(), rtol=1e-12, atol=0)
    # each pair's number of events and newest event, as marts.interactions has them
    per_pair = events.groupby(["user_id", "item_id"]).agg(n_events=("weight", "size"), last_at=("event_at", "max"))
    counted = got.frame.set_index(["user_id", "item_id"]).sort_index()
    assert counted["n_events"].tolist() == per_pair["n_events"].tolist()
    assert counted["last_at"].tolist() == per_pair["last_at"].tolist()
    assert list(got.users) == sorted(events["user_id"].unique())
    bought = events[events["event_type"] == "purchase"].groupby(["user_id", "item_id"]).size().sort_index()
    excl = got.excluded.set_index(["user_id", "item_id"])["weight"].sort_index()
    assert list(excl.index) == list(bought.index)
    assert excl.to_numpy().tolist() == bought.astype(float).to_numpy().tolist()
    assert excl.loc[("buyer", "i1")] == 2.0
    none = load_decayed_interactions(wh, HALF_LIFE)
    assert none.excluded.empty and list(none.excluded.columns) == ["user_id", "item_id", "weight"]
    _check_shards(wh, got)


def _check_shards(wh: Warehouse, whole) -> None:
    """A publish shard's read holds exactly its users' rows of the whole read; popularity is
    the whole shop's sum per item."""
    from ml.publish.shards import Shard, shard_of

    n = 3
    with wh.connect() as con:  # (a shard's users are those of the users table whose hash names it)
        wh.execute(con, "create table marts.user_features as select distinct user_id from marts.interaction_events")
    of = dict(zip(whole.users, shard_of(whole.users, n), strict=True))
    for i in range(n):
        part = load_decayed_interactions(wh, HALF_LIFE, ("purchase",), Shard(i, n).where(wh))
        mine = whole.frame[whole.frame["user_id"].map(of) == i]
        assert 0 < len(part.frame) < len(whole.frame)
        pd.testing.assert_frame_equal(
            part.frame.sort_values(["user_id", "item_id"]).reset_index(drop=True),
            mine.sort_values(["user_id", "item_id"]).reset_index(drop=True),
        )
        assert list(part.users) == [u for u in whole.users if of[u] == i]
        assert set(map(tuple, part.excluded[["user_id", "item_id"]].to_numpy())) == set(
            map(tuple, whole.excluded.loc[whole.excluded["user_id"].map(of) == i, ["user_id", "item_id"]].to_numpy())
        )
        # popularity is the whole shop's in every shard
        pd.testing.assert_series_equal(part.popularity.sort_index(), whole.popularity.sort_index())
    popularity = whole.popularity.sort_index()
    want = whole.frame.groupby("item_id")["weight"].sum().sort_index()
    assert list(popularity.index) == list(want.index)
    np.testing.assert_allclose(popularity.to_numpy(), want.to_numpy(), rtol=1e-12)


@pytest.mark.unit
def test_duckdb_matches_pandas(warehouse: Warehouse) -> None:
    _load(warehouse, _events())
    _check(warehouse)


@pytest.mark.integration
def test_postgres_matches_pandas(pg_warehouse: Warehouse) -> None:
    _load(pg_warehouse, _events())
    _check(pg_warehouse)


@pytest.mark.unit
def test_no_events(warehouse: Warehouse) -> None:
    _load(warehouse, _events().iloc[:0])
    got = load_decayed_interactions(warehouse, HALF_LIFE, ("purchase",))
    assert got.frame.empty and got.excluded.empty and len(got.users) == 0
    assert pd.isna(got.as_of)


@pytest.mark.integration
def test_typed_bulk_reads_equal_plain_reads_on_postgres(pg_warehouse: Warehouse) -> None:
    """``query_typed`` (COPY ... TO STDOUT parsed by Arrow on PostgreSQL) gives the frame
    ``query`` gives: NULL and empty text kept apart, quotes, commas, newlines and non-ASCII text
    intact, doubles exact, an empty result with the same columns and dtypes."""
    wh = pg_warehouse
    rows = pd.DataFrame(
        {
            "user_id": ["a", "", None, 'quote " and, comma', "line\nbreak", "\u00e9\u2603"],
            "item_id": ["x", "y", "z", "w", "v", "u"],
            "weight": [0.1, 1 / 3, None, -0.0, 1e-300, 12345.678901234567],
            "n": [1, 2, 3, 2**40, -5, 0],
        }
    )
    with wh.connect() as con:
        wh.execute(con, "create table t (user_id text, item_id text, weight double precision, n bigint)")
        wh.append_df(con, "t", rows)
    types = {"user_id": "text", "item_id": "text", "weight": "double", "n": "bigint"}
    q = "select user_id, item_id, weight, n from t where n > ? and user_id is distinct from ? order by item_id desc"
    params = [-10, "it's"]  # (a quote in a bound text: ADBC reads the query with literals bound)
    plain = wh.query(q, params)
    # a read-only connection (or none) reads through ADBC, a writable one as CSV on itself
    with wh.connect(read_only=True) as ro, wh.connect() as rw:
        for con in (None, ro, rw):
            typed = wh.query_typed(q, types, params, con)
            pd.testing.assert_frame_equal(typed, plain, check_exact=True)
            assert pd.isna(typed["user_id"].iloc[0]) and typed["user_id"].iloc[1] == ""
            assert np.signbit(typed["weight"].iloc[3]) and typed["weight"].iloc[5] == 12345.678901234567
            empty = wh.query_typed(q, types, [2**50, ""], con)
            assert empty.empty and list(empty.columns) == list(types)
            assert [str(t) for t in empty.dtypes] == ["str", "str", "float64", "int64"]


@pytest.mark.unit
def test_typed_reads_on_duckdb_equal_duckdbs_own_frames(tmp_path) -> None:
    """On DuckDB a result of text, double, bigint and timestamp columns comes through Arrow: the frame
    equals DuckDB's own ``df()`` value for value and dtype for dtype (NULL and empty text kept
    apart, a bigint column with NULLs as ``Int64``), bound parameters included, and the
    transaction's own uncommitted rows are seen; an empty result keeps its column types; other
    column types still go through ``df()``."""
    wh = Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    rows = pd.DataFrame(
        {
            "user_id": ["a", "", None, 'quote " and, comma', "line\nbreak", "\u00e9\u2603"],
            "weight": [0.1, 1 / 3, None, -0.0, 1e-300, 12345.678901234567],
            "n": [1, 2, 3, 2**40, -5, 0],
            "m": [1, None, 3, None, 5, 6],
            "seen_at": [
                pd.Timestamp("2026-10-01 12:00:00.123456"),
                None,
                pd.Timestamp("1970-01-01"),
                pd.Timestamp("2026-12-31 23:59:59"),
                None,
                pd.Timestamp("2000-02-29 06:00"),
            ],
        }
    )
    with wh.connect() as con:
        wh.execute(con, "create table t (user_id text, weight double, n bigint, m bigint, seen_at timestamp)")
        con.register("_rows", rows)
        wh.execute(con, "insert into t select * from _rows")
        q = "select user_id, weight, n, m, seen_at from t where n > ? order by n"
        types = {"user_id": "text", "weight": "double", "n": "bigint", "m": "bigint", "seen_at": "timestamp"}
        own = con.execute(q, [-10]).df()
        typed = wh.query_typed(q, types, [-10], con)
        pd.testing.assert_frame_equal(typed, own, check_exact=True)
        assert str(typed["m"].dtype) == "Int64" and str(typed["n"].dtype) == "int64"
        assert typed["user_id"].isna().sum() == 1 and (typed["user_id"] == "").sum() == 1
        assert typed["seen_at"].isna().sum() == 2 and str(typed["seen_at"].dtype) == "datetime64[us]"
        empty = wh.query_typed(q, types, [2**50], con)
        # an empty result keeps the column types, as on PostgreSQL (DuckDB's df() gives objects)
        assert empty.empty
        assert [str(t) for t in empty.dtypes] == ["str", "float64", "int64", "int64", "datetime64[us]"]
        # a date column: DuckDB's df() as before
        dated = wh.query_typed("select date '2026-12-07' as d", {"d": "date"}, None, con)
        pd.testing.assert_frame_equal(dated, con.execute("select date '2026-12-07' as d").df())


@pytest.mark.integration
def test_typed_reads_see_the_transactions_own_writes_and_read_only_refuses_writes(pg_warehouse: Warehouse) -> None:
    """A writable connection's typed read sees its uncommitted rows (it reads on that
    connection); a read-only connection's transactions are READ ONLY on the server."""
    import psycopg

    wh = pg_warehouse
    types = {"n": "bigint"}
    with wh.connect() as con:
        wh.execute(con, "create table w (n bigint)")
        wh.execute(con, "insert into w values (1), (2)")
        assert wh.query_typed("select n from w order by n", types, None, con)["n"].tolist() == [1, 2]
    with wh.connect(read_only=True) as ro:
        assert wh.query_typed("select n from w order by n", types, None, ro)["n"].tolist() == [1, 2]
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            wh.execute(ro, "insert into w values (3)")


@pytest.mark.integration
def test_read_table_reads_typed_columns_with_their_values_on_postgres(pg_warehouse: Warehouse) -> None:
    """``read_table`` reads a table of known column types in bulk: the values ``select *``
    gives (booleans with NULLs, timestamps, integers, doubles, texts), column by column."""
    wh = pg_warehouse
    with wh.connect() as con:
        wh.execute(
            con,
            "create table s (id varchar, pos integer, at timestamp, flag boolean, sure boolean, p double precision, "
            "day date)",
        )
        wh.execute(
            con,
            "insert into s values ('a', 1, '2026-10-30 12:34:56.123456', true, true, 0.25, '2026-10-30'), "
            "('b', 2, null, null, false, null, null), ('', 3, '2026-01-01 00:00:00', false, true, 1e-9, '2025-12-31')",
        )
    typed, plain = wh.read_table("public.s"), wh.query("select * from public.s")
    assert list(typed.columns) == list(plain.columns)
    for c in typed.columns:
        want = plain[c].astype(object).where(plain[c].notna(), None).tolist()
        assert typed[c].astype(object).where(typed[c].notna(), None).tolist() == want, c
    assert str(typed["at"].dtype) == "datetime64[us]" and str(typed["sure"].dtype) == "bool"
    assert typed["flag"].tolist() == [True, None, False]
    assert typed["day"].max() == plain["day"].max()  # dates as datetime.date, as psycopg gives them
    some = wh.read_table("public.s", columns=("day", "id", "p"))
    assert list(some.columns) == ["day", "id", "p"]
    pd.testing.assert_frame_equal(some, typed[["day", "id", "p"]], check_exact=True)
