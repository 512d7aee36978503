"""Load landing batches (CSV, JSON Lines, Parquet) into the warehouse ``raw`` schema.

Every row ends up in exactly one place: the raw table, or ``raw.quarantine`` with a reason
code and its original values, so ``rows == accepted + quarantined`` for every file.

* Whole-file problems (unreadable or truncated file, wrong format, not UTF-8, missing required
  columns) raise :class:`LandingFileError` (CLI exit code 2) before anything is written. An
  empty file is a batch of 0 rows. Columns outside the contract are kept in ``_extra`` (JSON).
  Optional contract columns may be absent (an older export format): they load as null. For
  ``users.marketing_opt_out`` null means "not stated" and staging keeps the user's latest stated
  value (false when never stated); a value that is not a boolean is ``wrong_type``.
* Row rules (:data:`RULES`) give each bad row the reason code of the first rule it breaks.
* A batch whose share of bad rows exceeds the threshold (default 5 %), or whose accepted rows
  fail the landing gate (``ml/quality/suites/landing_<table>.yml``), is *blocked*
  (:class:`BatchBlocked`, exit code 3): nothing of it is accepted; its bad rows are quarantined
  with their reasons and its good rows with ``batch_blocked``, so fixing the cause and
  re-ingesting the same file loses nothing.
* A batch is identified by the hash of its bytes: re-ingesting an accepted file is a no-op, and
  re-ingesting a blocked one replaces its quarantine rows. A repeated event_id is kept once,
  also across batches; an item or user re-sent unchanged is a duplicate, a changed one a new
  version (staging keeps the latest).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml import columns as C
from ml.config import IngestSettings
from ml.warehouse import DDL_LOCK, Warehouse

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
# order matters: the catalogue must land before events are checked against it
TABLE_ORDER = ("items", "users", "events")

# row rules: reason code -> what it means (the first rule a row breaks names its reason)
RULES: dict[str, str] = {
    "malformed_row": (
        "the line could not be parsed (CSV row with the wrong number of fields, not a JSON object, or a JSON "
        "string escaping half of a UTF-16 surrogate pair, which is not text)"
    ),
    "missing_required": "a required field is empty",
    "wrong_type": "a value does not parse as the contract's type (number, integer, timestamp, JSON object, boolean)",
    "out_of_range": (
        f"an integer outside the 32-bit range of its column ({C.INT_MIN} to {C.INT_MAX}), which neither "
        "warehouse can store"
    ),
    "bad_text": "a text value holds a NUL character (0x00), which PostgreSQL cannot store",
    "bad_id": f"user_id or item_id breaks the id rule ({C.ID_RULE})",
    "unknown_event_type": "event_type is not one of " + ", ".join(C.EVENT_TYPES),
    "missing_item_id": "item_id is empty on an event type that needs an item (all but search)",
    "bad_category_path": "category_path has an empty level ('Women >  > Boots')",
    "negative_price": "price < 0",
    "absurd_price": "price above the cap (INTERESTFLOW_PRICE_CAP, default 100000)",
    "bad_quantity": "quantity < 1",
    "bad_rating": "rating outside 1-5",
    "bad_position": "slate position < 1",
    "future_time": "event_time later than now plus the tolerance (default 60 minutes)",
    "before_shop_start": "event_time before the shop's start (INTERESTFLOW_SHOP_START)",
    "unknown_item": "item_id is not in the catalogue (raw.items)",
    "duplicate_row": "an exact copy of an earlier row of the batch, or of the stored version of the item/user",
    "duplicate_event_id": "event_id already seen (earlier in the batch or in an earlier batch): kept once",
    "duplicate_key": "item_id/user_id repeated within the batch: the first row is kept",
    "batch_blocked": "a good row of a blocked batch (kept here so nothing is lost)",
}
# reasons that are not "bad data": they never count towards blocking a batch
NON_BLOCKING = {"duplicate_event_id", "duplicate_row", "duplicate_key", "batch_blocked"}

RAW_DDL = {
    "items": """item_id varchar, title varchar, description varchar, category_path varchar,
        brand varchar, price double precision, attributes varchar, created_at timestamptz""",
    "events": """event_id varchar, event_time timestamptz, user_id varchar, session_id varchar,
        event_type varchar, item_id varchar, query varchar, price double precision, quantity integer,
        rating integer, review_text varchar, recommendation_id varchar, position integer""",
    "users": "user_id varchar, signup_time timestamptz, country varchar, marketing_opt_out boolean",
}
# columns added to the contract after a raw table may already exist: (table, column, type)
RAW_MIGRATIONS = (("users", "marketing_opt_out", "boolean"),)
META_DDL = "_extra varchar, _batch_id varchar, _row_number bigint, _ingested_at timestamptz"
MALFORMED = "__malformed__"
_MAGIC = {b"PAR1": "Parquet", b"\x1f\x8b": "gzip-compressed", b"PK\x03\x04": "ZIP/Excel"}


class LandingFileError(Exception):
    """A whole-file problem: nothing of the file is written (CLI exit code 2)."""

    exit_code = 2

    def __init__(self, file: Path | str, problem: str):
        super().__init__(f"{file}: {problem}")
        self.file = str(file)
        self.problem = problem


class BatchBlocked(Exception):
    """Too many bad rows, or a failed landing gate: nothing of the batch is accepted (exit code 3)."""

    exit_code = 3

    def __init__(self, report: BatchReport):
        detail = f"\n{report.gate_summary}" if report.gate_summary else ""
        super().__init__(f"{report.file}: batch blocked, {report.blocked_by}; reasons {report.reasons}{detail}")
        self.report = report


@dataclass
class BatchReport:
    file: str
    table: str
    batch_id: str
    rows: int
    accepted: int
    quarantined: int
    reasons: dict[str, int] = field(default_factory=dict)
    status: str = "accepted"  # accepted | blocked | already_ingested
    invalid_fraction: float = 0.0
    extra_columns: list[str] = field(default_factory=list)
    blocked_by: str = ""
    gate_passed: bool | None = None
    data_docs_path: str = ""
    gate_summary: str = ""

    def accounting(self) -> dict[str, Any]:
        """The JSON accounting line: ``rows == accepted + quarantined`` always holds."""
        out = {
            "file": self.file,
            "table": self.table,
            "rows": self.rows,
            "accepted": self.accepted,
            "quarantined": self.quarantined,
            "reasons": self.reasons,
            "batch_id": self.batch_id,
            "status": self.status,
        }
        if self.extra_columns:
            out["extra_columns"] = self.extra_columns
        if self.blocked_by:
            out["blocked_by"] = self.blocked_by
        if self.data_docs_path and self.gate_passed is False:
            out["data_docs"] = self.data_docs_path
        return out


@dataclass
class LandingFrame:
    """A parsed landing file: one row per data row (in file order) and the rows that did not parse."""

    df: pd.DataFrame
    malformed: dict[int, str] = field(default_factory=dict)  # df index -> the raw line


def table_for(path: Path) -> str:
    stem = Path(path).name.split(".")[0].lower()
    for t in C.LANDING:
        if re.fullmatch(rf"{t}([_\-].*)?", stem):
            return t
    raise LandingFileError(path, f"cannot tell which table this is: name must start with one of {list(C.LANDING)}")


def _sniff_binary(path: Path, raw: bytes, fmt: str) -> None:
    for magic, what in _MAGIC.items():
        if raw.startswith(magic) and not (fmt == "parquet" and what == "Parquet"):
            raise LandingFileError(path, f"wrong format: the file is {what}, but its name says {fmt}")


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise LandingFileError(
            path, f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start} (line {line}) ({exc.reason})"
        ) from exc


def _read_parquet(path: Path, raw: bytes) -> LandingFrame:
    if not raw.startswith(b"PAR1"):
        raise LandingFileError(path, "wrong format: not a Parquet file (no PAR1 magic bytes at the start)")
    if not raw.endswith(b"PAR1"):
        raise LandingFileError(path, "truncated Parquet file: the footer (PAR1 magic bytes at the end) is missing")
    try:
        import pyarrow.parquet as pq

        return LandingFrame(pq.read_table(io.BytesIO(raw)).to_pandas())
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise LandingFileError(path, f"unreadable Parquet file ({exc})") from exc


def _read_csv(path: Path, text: str) -> LandingFrame:
    if text.lstrip().startswith(("{", "[")):
        raise LandingFileError(path, "wrong format: looks like JSON, but the name says CSV")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
        records = list(reader)
    except csv.Error as exc:
        if not text.endswith(("\n", "\r")) and reader.line_num >= text.count("\n"):
            raise LandingFileError(
                path, f"truncated CSV: the last row is cut off inside a quoted field ({exc})"
            ) from exc
        raise LandingFileError(path, f"unreadable CSV at line {reader.line_num} ({exc})") from exc
    header = [h.strip() for h in header]
    if len(set(header)) != len(header):
        dups = sorted({h for h in header if header.count(h) > 1})
        raise LandingFileError(path, f"unreadable CSV: repeated column names in the header: {', '.join(dups)}")
    records = [r for r in records if r and any(v.strip() for v in r)]  # blank lines are not rows
    if records and len(records[-1]) < len(header) and not text.endswith(("\n", "\r")):
        raise LandingFileError(
            path,
            f"truncated CSV: the last row has {len(records[-1])} of {len(header)} fields and the file "
            "does not end with a newline",
        )
    width = len(header)
    blank: list[str | None] = [None] * width
    good: list[list[str | None]] = [list(r) if len(r) == width else blank for r in records]
    df = pd.DataFrame(good, columns=header, dtype=object)
    df = df.where(df.notna() & df.astype("string").ne(""), None)
    malformed = {i: ",".join(r) for i, r in enumerate(records) if len(r) != width}
    return LandingFrame(df, malformed)


def _read_jsonl(path: Path, text: str) -> LandingFrame:
    stripped = text.strip()
    if stripped.startswith("["):  # a JSON array of objects (.json) is accepted too
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise LandingFileError(path, f"unreadable JSON array ({exc.msg} at line {exc.lineno})") from exc
        if not all(isinstance(r, dict) for r in data):
            raise LandingFileError(path, "wrong format: a JSON array must hold objects, one per row")
        bad = {n: json.dumps(r) for n, r in enumerate(data) if "\\ud" in stripped.lower() and _not_text(r)}
        return LandingFrame(pd.DataFrame.from_records([{} if n in bad else r for n, r in enumerate(data)]), bad)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    records: list[dict[str, Any]] = []
    malformed: dict[int, str] = {}
    for n, line in enumerate(lines):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            if n == 0:
                raise LandingFileError(
                    path, f"wrong format: line 1 is not JSON ({exc.msg}); expected JSON Lines"
                ) from exc
            if n == len(lines) - 1 and not text.endswith(("\n", "\r")):
                raise LandingFileError(
                    path, f"truncated JSON Lines: the last line ({n + 1}) is cut off ({exc.msg})"
                ) from exc
            rec = None
        if isinstance(rec, dict) and not ("\\ud" in line.lower() and _not_text(rec)):
            records.append(rec)
        else:
            malformed[n] = line
            records.append({})
    df = pd.DataFrame.from_records(records)
    return LandingFrame(df, malformed)


def _not_text(rec: dict[str, Any]) -> bool:
    """True when a parsed JSON object holds a string that is not valid Unicode: a lone UTF-16
    surrogate from an escape such as ``"\\ud800"`` (no database or UTF-8 file can store it)."""
    try:
        json.dumps(rec, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def read_landing(path: Path) -> LandingFrame:
    """Parse a landing file; raise :class:`LandingFileError` for whole-file problems."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise LandingFileError(path, f"unsupported format {path.suffix!r}: use .csv, .jsonl or .parquet")
    if not path.is_file():
        raise LandingFileError(path, "file does not exist")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise LandingFileError(path, f"unreadable file ({exc.strerror})") from exc
    if len(raw) == 0:
        return LandingFrame(pd.DataFrame())
    _sniff_binary(path, raw, fmt)
    if fmt == "parquet":
        return _read_parquet(path, raw)
    text = _decode(path, raw)
    if not text.strip():
        return LandingFrame(pd.DataFrame())
    return _read_csv(path, text) if fmt == "csv" else _read_jsonl(path, text)


def read_landing_file(path: Path) -> pd.DataFrame:
    """The parsed rows of a landing file (malformed rows as empty rows)."""
    return read_landing(path).df


def _is_blank(s: pd.Series) -> pd.Series:
    blank = s.isna()
    if s.dtype == object or pd.api.types.is_string_dtype(s):
        blank = blank | s.astype("string").str.strip().fillna("").eq("")
    return blank


def _to_time(s: pd.Series) -> pd.Series:
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_any_dtype(s):
        return s.dt.tz_localize("UTC")
    # ISO 8601 only (the contract): values without a zone are UTC, offsets are converted
    return pd.to_datetime(s.astype("string").str.strip(), utc=True, errors="coerce", format="ISO8601")


def _to_num(s: pd.Series) -> pd.Series:
    if s.dtype == bool or pd.api.types.is_bool_dtype(s):
        return pd.Series(np.nan, index=s.index)  # a boolean is not a number in the contract
    if pd.api.types.is_numeric_dtype(s):
        return pd.to_numeric(s, errors="coerce")  # already numbers (Parquet): nothing to strip
    stripped = _stripped_strings(s)
    if stripped is not None:
        return pd.to_numeric(pd.Series(stripped, index=s.index, dtype=object), errors="coerce")
    return pd.to_numeric(s.map(lambda x: x.strip() if isinstance(x, str) else x), errors="coerce")


@cache
def _whitespace() -> str:
    """Every character ``str.strip()`` removes (``str.isspace``), for Arrow's trim."""
    return "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace())


def _stripped_arrow(s: pd.Series) -> Any:
    """``s``'s values stripped exactly as ``str.strip()`` does, as an Arrow array (null where a
    value is missing), computed by Arrow instead of one Python call per value; None when ``s``
    holds anything other than strings and missing values (the caller then goes value by value)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(s) == 0 or pd.api.types.infer_dtype(s, skipna=True) not in ("string", "empty"):
        return None
    try:
        if isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "pyarrow":
            arr = pa.array(s.array).cast(pa.large_string())  # already Arrow (Parquet, pandas' str)
        else:
            arr = pa.array(s.to_numpy(dtype=object, na_value=None), type=pa.large_string(), from_pandas=True)
    except (pa.ArrowException, UnicodeError):  # e.g. a lone surrogate from a JSON escape
        return None
    return pc.utf8_trim(arr, characters=_whitespace())


def _stripped_strings(s: pd.Series) -> np.ndarray | None:
    """:func:`_stripped_arrow` as an object array (None where missing)."""
    arr = _stripped_arrow(s)
    return None if arr is None else arr.to_numpy(zero_copy_only=False)


def _text(s: pd.Series, blank: pd.Series) -> pd.Series:
    """Text values stripped, missing where blank: what ``.map(_as_text)`` gives (a ``str``
    column, or an object column of None when every value is blank), without the Python call
    per value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = _stripped_arrow(s)
    if arr is None:
        return s.astype(object).where(~blank, None).map(_as_text)
    mask = pa.array(blank.to_numpy(dtype=bool))
    if mask.true_count == len(s):
        return pd.Series([None] * len(s), index=s.index, dtype=object)
    out = pc.if_else(mask, pa.scalar(None, type=pa.large_string()), arr).to_pandas()
    out.index = s.index
    return out


def _row_keys(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with every value compared as text (exact-duplicate rows are duplicates of these).
    A datetime column is compared by its integer value instead: the same instant prints the same
    in one column, and printing millions of timestamps is the slowest part of ingesting."""
    cols: dict[Any, Any] = {}
    for c in df.columns:
        s = df[c]
        if pd.api.types.is_datetime64_any_dtype(s):
            cols[c] = pd.arrays.IntegerArray(np.asarray(s.array.asi8, dtype=np.int64), s.isna().to_numpy(dtype=bool))
        else:
            cols[c] = s.astype("string").array
    return pd.DataFrame(cols, index=df.index)


def _to_bool(s: pd.Series) -> pd.Series:
    """Contract booleans: true/false, 1/0, yes/no (any case) or real booleans; anything else
    (and a missing value) becomes <NA>, which the caller flags as ``wrong_type`` when not blank."""

    def one(x: Any) -> bool | None:
        if x is None or x is pd.NA or (isinstance(x, float) and np.isnan(x)):
            return None
        if isinstance(x, bool | np.bool_):
            return bool(x)
        if isinstance(x, int | np.integer | float | np.floating):
            return bool(x) if x in (0, 1) else None
        text = str(x).strip().lower()
        return True if text in C.BOOL_TRUE else False if text in C.BOOL_FALSE else None

    return s.map(one).astype("boolean")


def _json_ok(x: object) -> bool:
    try:
        return isinstance(json.loads(str(x)), dict)
    except (ValueError, TypeError):
        return False


def _as_text(x: Any) -> str | None:
    if x is None or x is pd.NA or (isinstance(x, float) and np.isnan(x)):
        return None
    return str(x).strip()


def _typed_column(col: str, kind: str, s: pd.Series, blank: pd.Series, flag: Callable[[Any, str], None]) -> pd.Series:
    """Column ``col`` of a batch as the contract's ``kind``, flagging (through ``flag``) each
    non-blank value that does not parse (``wrong_type``), does not fit the raw column
    (``out_of_range``, ``bad_text``) or breaks the id rule (``bad_id``)."""
    if kind == "time":
        v = _to_time(s)
        flag(~blank & v.isna(), "wrong_type")
    elif kind in ("float", "int"):
        v = _to_num(s)
        flag(~blank & v.isna(), "wrong_type")
        flag(~blank & v.notna() & ~np.isfinite(v.fillna(0)), "wrong_type")
        if kind == "int":
            flag(~blank & v.notna() & (v != np.floor(v.fillna(0))), "wrong_type")
            flag(~blank & ((v < C.INT_MIN) | (v > C.INT_MAX)), "out_of_range")
    elif kind == "bool":
        v = _to_bool(s.where(~blank, None))
        flag(~blank & v.isna(), "wrong_type")
    elif kind == "json":
        v = s.where(~blank, None)
        ok = v.map(lambda x: x is None or isinstance(x, dict) or _json_ok(x))
        flag(~ok, "wrong_type")
        v = v.map(lambda x: json.dumps(x, sort_keys=True) if isinstance(x, dict) else x)
    else:
        v = _text(s, blank)
        text = v.astype("string")
        flag(text.str.contains("\x00", regex=False), "bad_text")
        if col in C.ID_COLUMNS:
            flag(~text.str.fullmatch(C.ID_PATTERN).fillna(True), "bad_id")
    return v


def validate(
    table: str,
    df: pd.DataFrame,
    settings: IngestSettings,
    known_items: set[str] | None,
    known_keys: set[str],
    now: datetime | None = None,
    malformed: set[int] | None = None,
    stored_versions: dict[str, str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``df`` into (accepted rows typed per the contract, quarantined rows with ``_reason``).

    The first rule a row breaks names its reason (order of :data:`RULES`). ``known_keys`` are
    event ids already stored (a repeat is a duplicate, kept once); ``stored_versions`` maps an
    item/user id to the fingerprint of its stored latest version (an unchanged re-send is a
    duplicate; a changed one is accepted as a new version).
    """
    spec = C.LANDING[table]
    n = len(df)
    reason = pd.Series([None] * n, index=df.index, dtype=object)

    def flag(mask: pd.Series | np.ndarray, code: str) -> None:
        m = pd.Series(mask, index=df.index).fillna(False).astype(bool) & reason.isna()
        reason[m] = code

    if malformed:
        flag(df.index.isin(list(malformed)), "malformed_row")
    typed = pd.DataFrame(index=df.index)
    for col, kind in spec.items():
        s = df[col] if col in df.columns else pd.Series([None] * n, index=df.index, dtype=object)
        blank = _is_blank(s)
        if col in C.REQUIRED[table]:
            flag(blank, "missing_required")
        typed[col] = _typed_column(col, kind, s, blank, flag)

    now = now or datetime.now(UTC)
    shop_start = pd.Timestamp(settings.shop_start)
    future = pd.Timestamp(now + timedelta(minutes=settings.future_tolerance_minutes))
    if table == "events":
        flag(~typed["event_type"].isin(C.EVENT_TYPES) & typed["event_type"].notna(), "unknown_event_type")
        needs_item = typed["event_type"].isin(C.ITEM_EVENT_TYPES)
        flag(needs_item & typed["item_id"].isna(), "missing_item_id")
    if table == "items":
        levels = typed["category_path"].fillna("x").str.split(">")
        flag(levels.map(lambda parts: any(not p.strip() for p in parts)), "bad_category_path")
    if "price" in typed:
        flag(typed["price"] < 0, "negative_price")
        flag(typed["price"] > settings.price_cap, "absurd_price")
    if table == "events":
        flag(typed["quantity"] < 1, "bad_quantity")
        flag((typed["rating"] < 1) | (typed["rating"] > 5), "bad_rating")
        flag(typed["position"] < 1, "bad_position")
        flag(typed["event_time"] > future, "future_time")
        flag(typed["event_time"] < shop_start, "before_shop_start")
        if known_items is not None:
            flag(typed["item_id"].notna() & ~typed["item_id"].isin(known_items), "unknown_item")

    key = C.KEYS[table]
    # exact duplicates within the batch, then repeated keys (within the batch or already stored)
    dup_row = _row_keys(df).duplicated(keep="first")
    if malformed:
        dup_row &= ~df.index.isin(list(malformed))
    flag(dup_row, "duplicate_row")
    ok_so_far = reason.isna()
    dup_key = typed[key].where(ok_so_far).duplicated(keep="first") & ok_so_far & typed[key].notna()
    if table == "events":
        flag(dup_key | typed[key].isin(known_keys), "duplicate_event_id")
    else:
        flag(dup_key, "duplicate_key")
        if stored_versions:
            prints = fingerprints(table, typed)
            flag(typed[key].map(stored_versions).eq(prints), "duplicate_row")

    return _split(table, df, typed, reason)


def _split(table: str, df: pd.DataFrame, typed: pd.DataFrame, reason: pd.Series) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the rows without a reason, typed per the contract; the others as given, with ``_reason``)."""
    bad = reason.notna()
    accepted = typed[~bad].copy()
    for col, kind in C.LANDING[table].items():
        if kind == "int":
            accepted[col] = accepted[col].astype("Int64")
        elif kind == "float":
            accepted[col] = accepted[col].astype("float64")
    quarantined = df[bad].copy()
    quarantined.insert(0, "_reason", reason[bad])
    return accepted, quarantined


def fingerprints(table: str, typed: pd.DataFrame) -> pd.Series:
    """A stable text fingerprint of each row's contract values (to spot unchanged re-sends)."""
    cols = list(C.LANDING[table])

    def one(row: pd.Series) -> str:
        parts = []
        for c in cols:
            v = row[c]
            if v is None or (not isinstance(v, str) and pd.isna(v)):
                parts.append("")
            elif isinstance(v, pd.Timestamp):
                parts.append(v.tz_convert("UTC").isoformat() if v.tzinfo else v.isoformat())
            elif isinstance(v, float | np.floating):
                parts.append(repr(round(float(v), 6)))
            else:
                parts.append(str(v))
        return hashlib.sha1("\x1f".join(parts).encode()).hexdigest()

    if typed.empty:
        return pd.Series(dtype=object)
    return typed[cols].apply(one, axis=1)


# the raw schema's bookkeeping tables, beside the landing tables of RAW_DDL
BOOK_DDL = {
    "quarantine": """batch_id varchar, file varchar, table_name varchar, row_number bigint, reason varchar,
        original varchar, quarantined_at timestamptz""",
    "ingest_batches": """batch_id varchar, file varchar, table_name varchar, rows_total bigint, accepted bigint,
        quarantined bigint, reasons varchar, status varchar, extra_columns varchar, ingested_at timestamptz""",
}


def ensure_raw_tables(wh: Warehouse, con: Any) -> None:
    """Create the raw tables and add contract columns that are missing, in a short transaction of
    its own, committed before the load starts. A warehouse that has them all is only read: no
    ``alter table`` (on PostgreSQL even a no-op one holds an exclusive lock on the table until
    commit, which made every reader of ``raw.users`` wait for a whole load). Creation takes the
    DDL advisory lock, so two ingests into a new PostgreSQL database both succeed."""
    have = wh.query(
        "select table_name, column_name from information_schema.columns where table_schema = 'raw'", None, con
    )
    columns = have.groupby("table_name")["column_name"].agg(set).to_dict()
    create = [t for t in (*RAW_DDL, *BOOK_DDL) if t not in columns]
    add = [(t, col, typ) for t, col, typ in RAW_MIGRATIONS if t in columns and col not in columns[t]]
    if not create and not add:
        if wh.kind == "postgres":
            wh.commit(con)  # end the read's transaction: the load starts its own
        return
    wh.begin(con)
    wh.lock(con, DDL_LOCK)
    wh.ensure_schemas(con)
    for t in create:
        ddl = f"{RAW_DDL[t]}, {META_DDL}" if t in RAW_DDL else BOOK_DDL[t]
        wh.execute(con, f"create table if not exists raw.{t} ({ddl})")
    for t, col, typ in add:
        wh.execute(con, f"alter table raw.{t} add column if not exists {col} {typ}")
    wh.commit(con)


def _batch_id(path: Path, table: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"{table}-{h.hexdigest()[:20]}"


def _existing_keys(wh: Warehouse, con: Any, table: str, key: str, values: pd.Series) -> set[str]:
    """Which of ``values`` are already stored as ``raw.<table>.<key>`` (one query, no full scan into Python)."""
    vals = pd.Series(values.dropna().astype(str).unique(), name="k")
    if vals.empty:
        return set()
    if wh.kind == "duckdb":
        con.register("_batch_keys", vals.to_frame())
        try:
            found = con.execute(
                f"select distinct t.{key} from raw.{table} t join _batch_keys b on t.{key} = b.k"
            ).fetchall()
        finally:
            con.unregister("_batch_keys")
    else:
        # the batch's keys go to a temporary table by COPY and are joined there: binding ten
        # million keys as one array parameter took ~10x as long as the COPY and the join
        import pyarrow as pa

        from ml.publish.copy import copy_arrow

        with con.cursor() as cur:
            cur.execute("drop table if exists pg_temp._batch_keys")
            cur.execute("create temporary table _batch_keys (k text)")
            copy_arrow(con, "_batch_keys", pa.table({"k": pa.array(vals.to_numpy(), pa.string())}))
            cur.execute(f"select distinct t.{key} from raw.{table} t join _batch_keys b on t.{key} = b.k")
            found = cur.fetchall()
            cur.execute("drop table _batch_keys")
    return {r[0] for r in found}


def _stored_versions(wh: Warehouse, con: Any, table: str, keys: pd.Series) -> dict[str, str]:
    """Fingerprints of the latest stored version of each item/user id in ``keys``."""
    key = C.KEYS[table]
    have = _existing_keys(wh, con, table, key, keys)
    if not have:
        return {}
    cols = ", ".join(C.LANDING[table])
    stored = wh.query(
        f"select {cols} from (select *, row_number() over (partition by {key} order by _ingested_at desc, "
        f"_row_number desc) as _n from raw.{table}) v where _n = 1",
        None,
        con,
    )
    stored = stored[stored[key].isin(have)].reset_index(drop=True)
    for col, kind in C.LANDING[table].items():
        if kind == "time":
            stored[col] = _to_time(stored[col])
        elif kind in ("float", "int"):
            stored[col] = pd.to_numeric(stored[col], errors="coerce")
        elif kind == "bool":
            stored[col] = _to_bool(stored[col])
    return dict(zip(stored[key], fingerprints(table, stored), strict=True))


def _originals(df: pd.DataFrame, frame: LandingFrame) -> pd.Series:
    """The original values of rows as JSON (malformed rows: their raw line)."""

    def one(idx: Any, row: pd.Series) -> str:
        if idx in frame.malformed:
            return json.dumps({"_raw_line": frame.malformed[idx]})
        return json.dumps({k: _json_value(v) for k, v in row.items() if not _missing(v)}, default=str)

    return pd.Series([one(i, r) for i, r in df.iterrows()], index=df.index, dtype=object)


def _missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _json_value(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, pd.Timestamp | datetime):
        return v.isoformat()
    return v


def _extras(df: pd.DataFrame, extra: list[str]) -> pd.Series:
    return pd.Series(
        [
            json.dumps({k: _json_value(v) for k, v in r.items() if not _missing(v)}, default=str)
            for _, r in df[extra].iterrows()
        ],
        index=df.index,
        dtype=object,
    )


def ingest_file(
    path: Path,
    wh: Warehouse | None = None,
    settings: IngestSettings | None = None,
    now: datetime | None = None,
    gate: bool = True,
) -> BatchReport:
    """Ingest one landing file atomically (see the module docstring for the guarantees).

    ``gate=False`` skips the Great Expectations landing gate (the row rules always apply).
    """
    path = Path(path)
    wh = wh or Warehouse.from_env()
    settings = settings or IngestSettings()
    table = table_for(path)
    frame = read_landing(path)
    df = frame.df.reset_index(drop=True)
    batch_id = _batch_id(path, table)
    if len(df.columns) > 0:
        missing = [c for c in C.REQUIRED[table] if c not in df.columns]
        if missing:
            raise LandingFileError(path, f"missing required columns: {', '.join(missing)}")
    extra = [c for c in df.columns if c not in C.LANDING[table]]

    with wh.connect() as con:
        ensure_raw_tables(wh, con)
        wh.begin(con)
        # one ingest of a table at a time: event ids stay unique across concurrent batches, and an
        # item or user version is compared with the stored one no other batch is changing
        wh.lock(con, f"interestflow.ingest:{table}")
        prev = wh.query("select * from raw.ingest_batches where batch_id = ? and status = 'accepted'", [batch_id], con)
        if len(prev):
            wh.rollback(con)
            return _already_ingested(prev.iloc[0], path, table, batch_id)
        # a blocked attempt of this very file is replaced, not added to
        wh.execute(con, "delete from raw.quarantine where batch_id = ?", [batch_id])
        wh.execute(con, "delete from raw.ingest_batches where batch_id = ?", [batch_id])
        if df.empty:
            report = BatchReport(str(path), table, batch_id, 0, 0, 0, extra_columns=extra)
            _record_batch(wh, con, report)
            wh.commit(con)
            return report
        known_items, known_keys, stored = _what_is_stored(wh, con, table, df)
        accepted, quarantined = validate(
            table, df, settings, known_items, known_keys, now, set(frame.malformed), stored
        )
        reasons = Counter(quarantined["_reason"])
        invalid = sum(v for k, v in reasons.items() if k not in NON_BLOCKING)
        report = BatchReport(
            file=str(path),
            table=table,
            batch_id=batch_id,
            rows=len(df),
            accepted=len(accepted),
            quarantined=len(quarantined),
            reasons={k: int(v) for k, v in sorted(reasons.items())},
            invalid_fraction=invalid / max(len(df), 1),
            extra_columns=extra,
        )
        if report.invalid_fraction > settings.quarantine_threshold:
            report.blocked_by = (
                f"{invalid} of {len(df)} rows invalid ({report.invalid_fraction:.1%} > threshold "
                f"{settings.quarantine_threshold:.1%})"
            )
        elif gate and len(accepted):
            _run_landing_gate(report, accepted, wh, con, settings)
        ingested_at = pd.Timestamp(now or datetime.now(UTC))
        if report.blocked_by:
            accepted, quarantined = _hold_blocked(report, df, accepted, quarantined)
        _store_rows(wh, con, report, frame, df, accepted, quarantined, ingested_at)
        _record_batch(wh, con, report)
        wh.commit(con)
    if report.status == "blocked":
        raise BatchBlocked(report)
    return report


def _what_is_stored(
    wh: Warehouse, con: Any, table: str, df: pd.DataFrame
) -> tuple[set[str] | None, set[str], dict[str, str]]:
    """What the batch's rows are checked against: (the catalogue's item ids, for events; the
    batch's event ids already stored; the stored versions' fingerprints, for items and users)."""
    keys = df[C.KEYS[table]].astype("string").str.strip()
    if table == "events":
        known_items = set(wh.query("select distinct item_id from raw.items", None, con)["item_id"])
        return known_items, _existing_keys(wh, con, "events", C.KEYS[table], keys), {}
    return None, set(), _stored_versions(wh, con, table, keys)


def _store_rows(
    wh: Warehouse,
    con: Any,
    report: BatchReport,
    frame: LandingFrame,
    df: pd.DataFrame,
    accepted: pd.DataFrame,
    quarantined: pd.DataFrame,
    ingested_at: pd.Timestamp,
) -> None:
    """Append the accepted rows (with their extras and bookkeeping columns) to ``raw.<table>``
    and the quarantined ones, with reason and original values, to ``raw.quarantine``. ``df``:
    the file's rows (``frame.df`` by position)."""
    if len(accepted):
        accepted = accepted.copy()
        accepted["_extra"] = _extras(df.loc[accepted.index], report.extra_columns) if report.extra_columns else None
        accepted["_batch_id"] = report.batch_id
        accepted["_row_number"] = (accepted.index.to_numpy() + 1).astype("int64")
        accepted["_ingested_at"] = ingested_at
        wh.append_df(con, f"raw.{report.table}", accepted)
    if len(quarantined):
        q = pd.DataFrame(
            {
                "batch_id": report.batch_id,
                "file": report.file,
                "table_name": report.table,
                "row_number": (quarantined.index.to_numpy() + 1).astype("int64"),
                "reason": quarantined["_reason"].astype(str).to_numpy(),
                "original": _originals(quarantined.drop(columns="_reason"), frame).to_numpy(),
                "quarantined_at": ingested_at,
            }
        )
        wh.append_df(con, "raw.quarantine", q)


def _already_ingested(r: pd.Series, path: Path, table: str, batch_id: str) -> BatchReport:
    """The report of a re-sent file, from its accepted batch's ``raw.ingest_batches`` row."""
    return BatchReport(
        file=str(path),
        table=table,
        batch_id=batch_id,
        rows=int(r["rows_total"]),
        accepted=int(r["accepted"]),
        quarantined=int(r["quarantined"]),
        reasons=json.loads(r["reasons"]),
        status="already_ingested",
        extra_columns=json.loads(r["extra_columns"] or "[]"),
    )


def _run_landing_gate(
    report: BatchReport, accepted: pd.DataFrame, wh: Warehouse, con: Any, settings: IngestSettings
) -> None:
    """Check the accepted rows with the table's landing gate; a failure blocks the batch."""
    from ml.quality.gates import check_landing_batch

    result = check_landing_batch(report.table, accepted, report.batch_id, wh, con, settings)
    report.gate_passed = result.passed
    report.data_docs_path = result.data_docs_path
    if not result.passed:
        report.blocked_by = (
            f"landing gate {result.gate} failed ({result.n_failed} of {result.n_expectations} expectations)"
        )
        report.gate_summary = result.summary()


def _hold_blocked(
    report: BatchReport, df: pd.DataFrame, accepted: pd.DataFrame, quarantined: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A blocked batch: nothing accepted, every row quarantined (the good ones as
    ``batch_blocked``); returns the new (accepted, quarantined) and updates ``report``."""
    held = df.loc[accepted.index].assign(_reason="batch_blocked")[["_reason", *df.columns]]
    quarantined = pd.concat([quarantined, held]).sort_index()
    report.status = "blocked"
    report.accepted = 0
    report.quarantined = len(quarantined)
    report.reasons = {k: int(v) for k, v in sorted(Counter(quarantined["_reason"]).items())}
    return accepted.iloc[0:0], quarantined


def _record_batch(wh: Warehouse, con: Any, report: BatchReport) -> None:
    wh.execute(
        con,
        "insert into raw.ingest_batches values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            report.batch_id,
            report.file,
            report.table,
            report.rows,
            report.accepted,
            report.quarantined,
            json.dumps(report.reasons),
            report.status,
            json.dumps(report.extra_columns),
            datetime.now(UTC),
        ],
    )


def order_paths(paths: list[Path]) -> list[Path]:
    """Catalogue first, then users, then events; files of one table in name order."""
    expanded: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            expanded += sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in FORMATS)
        else:
            expanded.append(p)
    return sorted(expanded, key=lambda p: (TABLE_ORDER.index(table_for(p)), p.name))


def ingest_paths(
    paths: list[Path], wh: Warehouse | None = None, settings: IngestSettings | None = None, gate: bool = True
) -> list[BatchReport]:
    """Ingest files and folders in dependency order. Raises on the first blocked/bad file."""
    return [ingest_file(p, wh, settings, gate=gate) for p in order_paths(paths)]


def report_dict(r: BatchReport) -> dict[str, Any]:
    return asdict(r)
