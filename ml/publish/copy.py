"""Fast bulk loading of a DataFrame into PostgreSQL with ``COPY … FROM STDIN`` (psycopg 3).

The frame is converted to Arrow once (zero-copy for numeric columns), then serialised to CSV
in slices of ``rows_per_chunk`` rows by a background thread while the calling thread streams
the previous slice into ``COPY``. Arrow's CSV writer runs without the GIL, so on two cores
the serialisation overlaps with PostgreSQL parsing the rows: the load costs about as much as
the ``COPY`` of pre-serialised bytes (see ``python -m ml bench pipeline``, ``publish_vs_copy``).

CSV rules that PostgreSQL and Arrow agree on: strings are always quoted (``""`` is an empty
string), an unquoted empty field is ``NULL``, booleans are ``true``/``false``, timestamps are
ISO 8601 with ``Z`` for UTC.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

ROWS_PER_CHUNK = 50_000
_END = object()


# pandas' inferred types of object columns that hold scalars only (strings, numbers, dates, nulls)
_SCALAR_KINDS = frozenset(
    {"empty", "string", "bytes", "integer", "floating", "mixed-integer-float", "decimal", "boolean"}
    | {"datetime", "date", "time", "timedelta"}
)


def _may_hold_containers(s: pd.Series) -> bool:
    """False when pandas' (C-speed) type inference proves an object column holds only scalars."""
    return pd.api.types.infer_dtype(s, skipna=True) not in _SCALAR_KINDS


def to_arrow(df: pd.DataFrame) -> pa.Table:
    """The frame as an Arrow table whose every column the CSV writer and PostgreSQL accept.

    Dictionary (categorical) columns are decoded; object columns holding dicts or lists become
    JSON text; nanosecond timestamps are cut to microseconds (PostgreSQL's resolution).
    """
    cols: dict[str, Any] = {}
    for name in df.columns:
        s = df[name]
        if s.dtype == object and _may_hold_containers(s) and s.map(lambda v: isinstance(v, dict | list | tuple)).any():
            s = s.map(lambda v: None if v is None else json.dumps(v, default=str, sort_keys=True))
        cols[str(name)] = s
    table = pa.Table.from_pandas(pd.DataFrame(cols, copy=False), preserve_index=False)
    fields = []
    arrays = []
    for f, col in zip(table.schema, table.columns, strict=True):
        t = f.type
        if pa.types.is_dictionary(t):
            col, t = col.cast(t.value_type), t.value_type
        if pa.types.is_timestamp(t) and t.unit == "ns":
            t = pa.timestamp("us", tz=t.tz)
            col = col.cast(t, safe=False)
        if pa.types.is_null(t):
            t = pa.string()
            col = col.cast(t)
        fields.append(pa.field(f.name, t))
        arrays.append(col)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def pg_type(t: pa.DataType) -> str:
    """The PostgreSQL column type for an Arrow type (text for anything without a closer match)."""
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return "smallint"
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return "integer"
    if pa.types.is_integer(t):
        return "bigint"
    if pa.types.is_float32(t):
        return "real"
    if pa.types.is_floating(t):
        return "double precision"
    if pa.types.is_decimal(t):
        return "numeric"
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_date(t):
        return "date"
    return "text"


def create_table_sql(table: str, schema: pa.Schema) -> str:
    cols = ", ".join(f'"{f.name}" {pg_type(f.type)}' for f in schema)
    return f"create table {table} ({cols})"


def csv_chunks(data: pa.Table, rows_per_chunk: int = ROWS_PER_CHUNK) -> Iterator[pa.Buffer]:
    """CSV bytes (no header) of consecutive row slices of ``data``."""
    opts = pacsv.WriteOptions(include_header=False, batch_size=min(rows_per_chunk, 64_000))
    for start in range(0, data.num_rows, rows_per_chunk):
        sink = pa.BufferOutputStream()
        pacsv.write_csv(data.slice(start, rows_per_chunk), sink, opts)
        yield sink.getvalue()


def _prefetch(chunks: Iterator[pa.Buffer], depth: int) -> Iterator[pa.Buffer]:
    """Produce ``chunks`` on a background thread, at most ``depth`` ahead of the consumer."""
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for c in chunks:
                while not stop.is_set():
                    try:
                        q.put(c, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_END)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            q.put(exc)

    t = threading.Thread(target=produce, name="csv-serialiser", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        t.join(timeout=5)


def copy_arrow(con: Any, table: str, data: pa.Table, rows_per_chunk: int = ROWS_PER_CHUNK, freeze: bool = False) -> int:
    """Stream ``data`` into an existing PostgreSQL table with ``COPY``; returns rows loaded.

    ``freeze=True`` adds ``FREEZE`` (rows are written frozen, sparing a later vacuum); it is
    only valid when ``table`` was created or truncated in the current transaction.
    """
    if data.num_rows == 0:
        return 0
    cols = ", ".join(f'"{c}"' for c in data.column_names)
    options = "format csv, freeze" if freeze else "format csv"
    with con.cursor() as cur, cur.copy(f"copy {table} ({cols}) from stdin with ({options})") as cp:
        for buf in _prefetch(csv_chunks(data, rows_per_chunk), depth=3):
            cp.write(memoryview(buf))
    return data.num_rows


def copy_frame(con: Any, table: str, df: pd.DataFrame, rows_per_chunk: int = ROWS_PER_CHUNK) -> int:
    """Append a DataFrame to an existing PostgreSQL table by column name with ``COPY``."""
    return copy_arrow(con, table, to_arrow(df), rows_per_chunk)
