"""``COPY`` streaming into PostgreSQL keeps every value: quotes, commas, newlines, empty strings
vs NULL, unicode, non-finite floats, booleans, UTC timestamps, JSON-able objects."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ml.publish.copy import copy_frame, create_table_sql, to_arrow

pytestmark = pytest.mark.integration


def _tricky() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "text": [
                "plain",
                'with "quotes", commas',
                "multi\nline\r\nvalue",
                "",
                None,
                "ünïcødé ✓",
                "\\N",
                "tab\there",
            ],
            "n": np.arange(8, dtype=np.int64),
            "small": np.arange(8, dtype=np.int32),
            "x": [0.1, -2.5, math.inf, -math.inf, math.nan, 1e-300, 1e300, 0.0],
            "flag": [True, False, True, False, True, False, True, False],
            "at": pd.to_datetime(["2026-01-01T00:00:00.123456Z"] * 4 + ["2026-06-30T23:59:59.000000Z"] * 4, utc=True),
            "meta": [{"k": i, "s": 'v,"x"'} if i % 2 else [i, "a"] for i in range(8)],
        }
    )


def test_copy_round_trips_every_value(pg_warehouse):
    df = _tricky()
    data = to_arrow(df)
    with pg_warehouse.connect() as con:
        pg_warehouse.ensure_schemas(con)
        pg_warehouse.execute(con, create_table_sql("serving.copy_check", data.schema))
        assert copy_frame(con, "serving.copy_check", df, rows_per_chunk=3) == len(df)  # several chunks
    got = pg_warehouse.query("select * from serving.copy_check order by n")
    types = pg_warehouse.query(
        "select column_name, data_type from information_schema.columns where table_name = 'copy_check'"
    ).set_index("column_name")["data_type"]
    assert types.to_dict() == {
        "text": "text",
        "n": "bigint",
        "small": "integer",
        "x": "double precision",
        "flag": "boolean",
        "at": "timestamp with time zone",
        "meta": "text",
    }
    assert got["text"].tolist()[:4] == df["text"].tolist()[:4]
    nulls = pg_warehouse.query(
        "select count(*) filter (where text is null) as nulls, count(*) filter (where text = '') as empties "
        "from serving.copy_check"
    )
    assert nulls.iloc[0].tolist() == [1, 1]  # None stays NULL, "" stays an empty string
    assert got["text"].tolist()[5:] == df["text"].tolist()[5:]
    assert got["n"].tolist() == list(range(8))
    for a, b in zip(got["x"], df["x"], strict=True):
        assert (math.isnan(a) and math.isnan(b)) or a == b
    assert got["flag"].tolist() == df["flag"].tolist()
    assert [pd.Timestamp(t) for t in got["at"]] == list(df["at"])
    assert got["meta"].iloc[1] == '{"k": 1, "s": "v,\\"x\\""}'


def test_an_empty_frame_loads_nothing(pg_warehouse):
    df = _tricky().iloc[:0]
    data = to_arrow(df)
    with pg_warehouse.connect() as con:
        pg_warehouse.ensure_schemas(con)
        pg_warehouse.execute(con, create_table_sql("serving.copy_empty", data.schema))
        assert copy_frame(con, "serving.copy_empty", df) == 0
    assert pg_warehouse.query("select count(*) as n from serving.copy_empty")["n"].iloc[0] == 0


def test_append_df_streams_in_chunks_and_keeps_every_row(pg_warehouse):
    """``Warehouse.append_df`` on PostgreSQL serialises a slice at a time: a frame loaded in
    chunks of 3 rows comes back whole and in value (text, NULL, timestamps)."""
    from ml.warehouse import copy_df

    df = pd.DataFrame(
        {
            "id": np.arange(10, dtype=np.int64),
            "text": ["a", "b,c", None, 'q"', "", "x", "y", None, "z", "w"],
            "at": pd.to_datetime(["2026-01-01T00:00:00Z"] * 10, utc=True) + pd.to_timedelta(np.arange(10), "s"),
        }
    )
    with pg_warehouse.connect() as con:
        pg_warehouse.execute(con, "create table public.chunked (id bigint, text varchar, at timestamptz)")
        copy_df(con, "public.chunked", df, rows_per_chunk=3)
        con.commit()
    back = pg_warehouse.query("select id, text, at from public.chunked order by id")
    assert back["id"].tolist() == list(range(10))
    assert back["text"].where(back["text"].notna(), None).tolist() == df["text"].tolist()
    assert (pd.to_datetime(back["at"], utc=True) == df["at"]).all()


def test_query_reads_in_chunks_with_the_types_of_one_frame(pg_warehouse, monkeypatch):
    """``Warehouse.query`` on PostgreSQL converts a large result a chunk at a time; with chunks
    of 3 rows the frame equals the one built from all rows at once, including a column that is
    all NULL in some chunks (it must not stay a generic object column) and an integer column
    with a NULL (float, as pandas infers for the whole column)."""
    import ml.warehouse as warehouse

    with pg_warehouse.connect() as con:
        pg_warehouse.execute(
            con, "create table public.chunked_read (id bigint, text varchar, x double precision, n int, at timestamp)"
        )
        rows = [
            (i, None if i < 4 or i == 8 else f"t{i}", i / 2, None if i == 9 else i, f"2026-01-0{1 + i % 9} 12:00:00")
            for i in range(10)
        ]
        with con.cursor() as cur:
            cur.executemany("insert into public.chunked_read values (%s, %s, %s, %s, %s)", rows)
        con.commit()
    sql = "select id, text, x, n, at from public.chunked_read order by id"
    whole = pg_warehouse.query(sql)
    monkeypatch.setattr(warehouse, "FETCH_CHUNK_ROWS", 3)
    chunked = pg_warehouse.query(sql)
    assert len(chunked) == 10
    assert list(chunked.dtypes.astype(str)) == list(whole.dtypes.astype(str))
    assert str(chunked["text"].dtype) != "object"
    assert str(chunked["n"].dtype) == "float64"
    pd.testing.assert_frame_equal(chunked, whole)
    empty = pg_warehouse.query("select id, text from public.chunked_read where id < 0")
    assert list(empty.columns) == ["id", "text"] and empty.empty


def test_append_df_loads_a_mixed_object_column_as_text(pg_warehouse):
    """A column of scalars of mixed Python types (which Arrow cannot type) lands as each
    value's text, missing values as NULL."""
    from ml.warehouse import copy_df

    df = pd.DataFrame({"id": np.arange(5, dtype=np.int64), "v": ["a", 7, 2.5, None, True]})
    with pg_warehouse.connect() as con:
        pg_warehouse.execute(con, "create table public.mixed (id bigint, v text)")
        copy_df(con, "public.mixed", df)
        con.commit()
    back = pg_warehouse.query("select v from public.mixed order by id")["v"]
    assert back.iloc[:3].tolist() == ["a", "7", "2.5"]
    assert pd.isna(back.iloc[3])
    assert back.iloc[4] == "True"
