"""A publish shard's users are chosen by Python (``shard_of``: the tests, the new-item caps) and
by the warehouse (``Shard.hashed`` and ``Shard.where``: the shard's reads and its gate). All
must name the same users."""

from __future__ import annotations

import pandas as pd
import pytest

IDS = ["U000001", "U000002", "u-émile", "用户-7", "", "x" * 300, "12345", "AbC", "abc"]


def _selected(wh, con, n: int) -> list[list[str]]:
    """Each shard's ids, chosen by the warehouse twice: hashed row by row (``Shard.hashed``) and
    through the users table (``Shard.where``); both must agree."""
    from ml.publish.shards import USERS_TABLE, Shard

    wh.execute(con, "create schema if not exists marts")
    wh.execute(con, f"drop table if exists {USERS_TABLE}")
    wh.execute(con, f"create table {USERS_TABLE} (user_id varchar)")
    wh.append_df(con, USERS_TABLE, pd.DataFrame({"user_id": IDS}))
    out = []
    for i in range(n):
        shard = Shard(i, n)
        hashed = wh.query(f"select user_id from {USERS_TABLE} where {shard.hashed(wh)}", None, con)["user_id"]
        through = wh.query(f"select user_id from {USERS_TABLE} where {shard.where(wh)}", None, con)["user_id"]
        assert sorted(hashed) == sorted(through)
        out.append(sorted(hashed))
    return out


def _expected(n: int) -> list[list[str]]:
    from ml.publish.shards import shard_of

    of = shard_of(IDS, n)
    return [sorted(u for u, s in zip(IDS, of, strict=True) if s == i) for i in range(n)]


@pytest.mark.unit
@pytest.mark.parametrize("n", [2, 3, 7])
def test_duckdb_selects_the_users_that_shard_of_names(tmp_path, n):
    from ml.warehouse import Warehouse

    wh = Warehouse(f"duckdb://{tmp_path / 'w.duckdb'}")
    with wh.connect() as con:
        assert _selected(wh, con, n) == _expected(n)


@pytest.mark.integration
def test_postgres_selects_the_users_that_shard_of_names(pg_warehouse):
    wh = pg_warehouse
    with wh.connect() as con:
        for n in (2, 3, 7):
            assert _selected(wh, con, n) == _expected(n)


@pytest.mark.unit
def test_the_whole_shop_is_one_shard_with_no_condition():
    from ml.publish.shards import Shard
    from ml.warehouse import Warehouse

    assert Shard().where(Warehouse("duckdb:///tmp/unused.duckdb")) is None
    with pytest.raises(ValueError, match="bad shard"):
        Shard(2, 2)


@pytest.mark.unit
@pytest.mark.parametrize("n", [1, 2, 3])
def test_holds_marks_the_rows_of_the_users_shard_of_names(n):
    """``Shard.holds`` (the feedback rows a shard keeps the user pairs of) agrees with
    ``shard_of`` on every row, repeated ids and Arrow strings included; a missing id is no
    shard's when there are several (the whole shop, one shard, holds every row)."""
    from ml.publish.shards import Shard, shard_of

    ids = pd.Series([*IDS, *IDS[::-1], None], dtype="string[pyarrow]")
    of = shard_of(IDS, n)
    for i in range(n):
        held = Shard(i, n).holds(ids)
        want = [bool(of[IDS.index(u)] == i) if u is not pd.NA else n == 1 for u in ids]
        assert held.tolist() == want
