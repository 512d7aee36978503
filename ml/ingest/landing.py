"""Load landing batches (CSV, JSON Lines, Parquet) into the warehouse ``raw`` schema.

Every row ends up in exactly one place: the raw table, or ``raw.quarantine`` with a reason
code and its original values. Whole-file problems raise :class:`LandingFileError` (exit 2)
and write nothing; a batch whose invalid share exceeds the threshold is *blocked*
(:class:`BatchBlocked`, exit 3) and nothing of it is accepted. A batch is identified by the
hash of its bytes, so re-ingesting the same file is a no-op.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml import columns as C
from ml.config import IngestSettings
from ml.warehouse import Warehouse

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
# order matters: the catalogue must land before events are checked against it
TABLE_ORDER = ("items", "users", "events")
# reasons that are not "bad data" and never count towards blocking a batch
NON_BLOCKING = {"duplicate_event_id", "duplicate_row", "duplicate_key"}

RAW_DDL = {
    "items": """item_id varchar, title varchar, description varchar, category_path varchar,
        brand varchar, price double, attributes varchar, created_at timestamptz""",
    "events": """event_id varchar, event_time timestamptz, user_id varchar, session_id varchar,
        event_type varchar, item_id varchar, query varchar, price double, quantity integer,
        rating integer, review_text varchar, recommendation_id varchar, position integer""",
    "users": "user_id varchar, signup_time timestamptz, country varchar",
}
META_DDL = "_extra varchar, _batch_id varchar, _row_number bigint, _ingested_at timestamptz"


class LandingFileError(Exception):
    """A whole-file problem: nothing of the file is written (CLI exit code 2)."""

    exit_code = 2

    def __init__(self, file: Path | str, problem: str):
        super().__init__(f"{file}: {problem}")
        self.file = str(file)
        self.problem = problem


class BatchBlocked(Exception):
    """Too many bad rows: the batch is blocked and nothing is accepted (exit code 3)."""

    exit_code = 3

    def __init__(self, report: BatchReport):
        super().__init__(
            f"{report.file}: batch blocked, {report.quarantined} of {report.rows} rows invalid "
            f"({report.invalid_fraction:.1%} > threshold); reasons {report.reasons}"
        )
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

    def accounting(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "table": self.table,
            "rows": self.rows,
            "accepted": self.accepted,
            "quarantined": self.quarantined,
            "reasons": self.reasons,
            "batch_id": self.batch_id,
            "status": self.status,
        }


def table_for(path: Path) -> str:
    stem = path.name.split(".")[0].lower()
    for t in C.LANDING:
        if re.fullmatch(rf"{t}([_\-].*)?", stem):
            return t
    raise LandingFileError(path, f"cannot tell which table this is: name must start with one of {list(C.LANDING)}")


def read_landing_file(path: Path) -> pd.DataFrame:
    """Read a landing file as strings-or-native values; raise LandingFileError on file problems."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise LandingFileError(path, f"unsupported format {path.suffix!r}: use .csv, .jsonl or .parquet")
    if not path.exists():
        raise LandingFileError(path, "file does not exist")
    raw = path.read_bytes()
    if len(raw) == 0:
        return pd.DataFrame()
    if fmt == "parquet":
        try:
            import pyarrow.parquet as pq

            return pq.read_table(io.BytesIO(raw)).to_pandas()
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise LandingFileError(path, f"unreadable or truncated Parquet file ({exc})") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LandingFileError(path, f"not UTF-8 text (byte {exc.start}: {exc.reason})") from exc
    if not text.strip():
        return pd.DataFrame()
    if fmt == "csv":
        if text.lstrip().startswith(("{", "[")):
            raise LandingFileError(path, "wrong format: looks like JSON, but the name says CSV")
        try:
            df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""])
        except Exception as exc:
            raise LandingFileError(path, f"unreadable CSV ({exc})") from exc
        if df.empty and len(df.columns) == 0:
            return pd.DataFrame()
        return df
    records = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LandingFileError(path, f"unreadable JSON Lines at line {n} ({exc.msg})") from exc
        if not isinstance(rec, dict):
            raise LandingFileError(path, f"line {n} is not a JSON object")
        records.append(rec)
    return pd.DataFrame.from_records(records)


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
    return pd.to_datetime(s.astype("string"), utc=True, errors="coerce", format="ISO8601")


def _to_num(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s, errors="coerce")


def validate(
    table: str,
    df: pd.DataFrame,
    settings: IngestSettings,
    known_items: set[str] | None,
    known_keys: set[str],
    now: datetime | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``df`` into (accepted rows typed per the contract, quarantined rows with reasons).

    The first failing rule names the row's reason. ``known_keys`` are primary keys already in
    the warehouse (repeats are quarantined as duplicates, so they are kept exactly once).
    """
    spec = C.LANDING[table]
    n = len(df)
    reason = pd.Series([None] * n, index=df.index, dtype=object)

    def flag(mask: pd.Series | np.ndarray, code: str) -> None:
        m = pd.Series(mask, index=df.index).fillna(False).astype(bool) & reason.isna()
        reason[m] = code

    typed = pd.DataFrame(index=df.index)
    for col, kind in spec.items():
        s = df[col] if col in df.columns else pd.Series([None] * n, index=df.index, dtype=object)
        blank = _is_blank(s)
        if col in C.REQUIRED[table]:
            flag(blank, "missing_required")
        if kind == "time":
            v = _to_time(s)
            flag(~blank & v.isna(), "wrong_type")
        elif kind in ("float", "int"):
            v = _to_num(s)
            flag(~blank & v.isna(), "wrong_type")
            if kind == "int":
                flag(~blank & v.notna() & (v != np.floor(v.fillna(0))), "wrong_type")
        elif kind == "json":
            v = s.where(~blank, None)
            ok = v.map(lambda x: x is None or isinstance(x, dict) or _json_ok(x))
            flag(~ok, "wrong_type")
            v = v.map(lambda x: json.dumps(x) if isinstance(x, dict) else x)
        else:
            v = s.astype(object).where(~blank, None).map(lambda x: None if x is None or x is pd.NA else str(x).strip())
        typed[col] = v

    now = now or datetime.now(UTC)
    shop_start = pd.Timestamp(settings.shop_start)
    future = pd.Timestamp(now + timedelta(minutes=settings.future_tolerance_minutes))
    if table == "events":
        flag(~typed["event_type"].isin(C.EVENT_TYPES) & typed["event_type"].notna(), "unknown_event_type")
        needs_item = typed["event_type"].isin(C.ITEM_EVENT_TYPES)
        flag(needs_item & typed["item_id"].isna(), "missing_item_id")
        flag(typed["event_time"] > future, "future_time")
        flag(typed["event_time"] < shop_start, "before_shop_start")
    if "price" in typed:
        flag(typed["price"] < 0, "negative_price")
        flag(typed["price"] > settings.price_cap, "absurd_price")
    if table == "events":
        flag(typed["quantity"] < 1, "bad_quantity")
        flag((typed["rating"] < 1) | (typed["rating"] > 5), "bad_rating")
        if known_items is not None:
            flag(typed["item_id"].notna() & ~typed["item_id"].isin(known_items), "unknown_item")
    key = C.KEYS[table]
    # exact duplicates within the batch, then repeated keys (within the batch or already stored)
    dup_row = df.astype("string").duplicated(keep="first")
    flag(dup_row, "duplicate_row")
    dup_code = "duplicate_event_id" if table == "events" else "duplicate_key"
    ok_so_far = reason.isna()
    dup_key = typed[key].where(ok_so_far).duplicated(keep="first") & ok_so_far & typed[key].notna()
    flag(dup_key | typed[key].isin(known_keys), dup_code)

    bad = reason.notna()
    accepted = typed[~bad].copy()
    for col, kind in spec.items():
        if kind == "int":
            accepted[col] = accepted[col].astype("Int64")
        elif kind == "float":
            accepted[col] = accepted[col].astype("float64")
    quarantined = df[bad].copy()
    quarantined.insert(0, "_reason", reason[bad])
    return accepted, quarantined


def _json_ok(x: object) -> bool:
    try:
        return isinstance(json.loads(str(x)), dict)
    except (ValueError, TypeError):
        return False


def ensure_raw_tables(wh: Warehouse, con: Any) -> None:
    wh.ensure_schemas(con)
    for t, ddl in RAW_DDL.items():
        wh.execute(con, f"create table if not exists raw.{t} ({ddl}, {META_DDL})")
    wh.execute(
        con,
        """create table if not exists raw.quarantine (batch_id varchar, file varchar,
        table_name varchar, row_number bigint, reason varchar, original varchar,
        quarantined_at timestamptz)""",
    )
    wh.execute(
        con,
        """create table if not exists raw.ingest_batches (batch_id varchar, file varchar,
        table_name varchar, rows_total bigint, accepted bigint, quarantined bigint,
        reasons varchar, status varchar, extra_columns varchar, ingested_at timestamptz)""",
    )


def _batch_id(path: Path, table: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"{table}-{h.hexdigest()[:20]}"


def ingest_file(
    path: Path,
    wh: Warehouse | None = None,
    settings: IngestSettings | None = None,
    now: datetime | None = None,
) -> BatchReport:
    """Ingest one landing file atomically. See module docstring for the guarantees."""
    path = Path(path)
    wh = wh or Warehouse.from_env()
    settings = settings or IngestSettings()
    table = table_for(path)
    df = read_landing_file(path)
    batch_id = _batch_id(path, table)
    if len(df.columns) > 0:
        missing = [c for c in C.REQUIRED[table] if c not in df.columns]
        if missing:
            raise LandingFileError(path, f"missing required columns: {', '.join(missing)}")
    extra = [c for c in df.columns if c not in C.LANDING[table]]

    with wh.connect() as con:
        ensure_raw_tables(wh, con)
        wh.begin(con)
        prev = wh.query("select * from raw.ingest_batches where batch_id = ? and status = 'accepted'", [batch_id], con)
        if len(prev):
            r = prev.iloc[0]
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
        if df.empty:
            report = BatchReport(str(path), table, batch_id, 0, 0, 0)
            _record_batch(wh, con, report)
            con.commit()
            return report
        key = C.KEYS[table]
        keys = wh.query(f"select distinct {key} as k from raw.{table}", None, con)["k"]
        known_keys = set(keys.tolist())
        known_items = None
        if table == "events":
            known_items = set(wh.query("select distinct item_id from raw.items", None, con)["item_id"])
        accepted, quarantined = validate(table, df, settings, known_items, known_keys, now)
        reasons = dict(Counter(quarantined["_reason"]))
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
            report.status = "blocked"
            report.accepted = 0
            _record_batch(wh, con, report)
            con.commit()
            raise BatchBlocked(report)
        ingested_at = pd.Timestamp(now or datetime.now(UTC))
        accepted = accepted.copy()
        if extra:
            accepted["_extra"] = (
                df.loc[accepted.index, extra]
                .astype("string")
                .apply(lambda r: json.dumps({k: v for k, v in r.items() if pd.notna(v)}), axis=1)
            )
        else:
            accepted["_extra"] = None
        accepted["_batch_id"] = batch_id
        accepted["_row_number"] = (accepted.index.to_numpy() + 1).astype("int64")
        accepted["_ingested_at"] = ingested_at
        q = pd.DataFrame(
            {
                "batch_id": batch_id,
                "file": str(path),
                "table_name": table,
                "row_number": (quarantined.index.to_numpy() + 1).astype("int64"),
                "reason": quarantined["_reason"].astype(str),
                "original": quarantined.drop(columns="_reason")
                .astype("string")
                .apply(lambda r: json.dumps({k: v for k, v in r.items() if pd.notna(v)}), axis=1)
                if len(quarantined)
                else pd.Series(dtype=str),
                "quarantined_at": ingested_at,
            }
        )
        wh.append_df(con, f"raw.{table}", accepted)
        wh.append_df(con, "raw.quarantine", q)
        _record_batch(wh, con, report)
        con.commit()
    return report


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
    paths: list[Path], wh: Warehouse | None = None, settings: IngestSettings | None = None
) -> list[BatchReport]:
    """Ingest files and folders in dependency order. Raises on the first blocked/bad file."""
    return [ingest_file(p, wh, settings) for p in order_paths(paths)]


def report_dict(r: BatchReport) -> dict[str, Any]:
    return asdict(r)
