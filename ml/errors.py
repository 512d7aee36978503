"""Errors a user can fix: ``python -m ml`` prints them as one line, ``error: <message>``, on
stderr and exits with their ``exit_code`` (2), without a traceback.

Commands and library code raise :class:`UsageError` (or :class:`MissingInput`) for a known input
problem — a nonsense argument, a file that is not there, a warehouse that is busy or not built
yet — with a message that says what is wrong and how to fix it. Any other exception is a bug and
keeps its traceback. Other domain errors follow the same convention through an ``exit_code``
attribute (``ml.ingest.landing.LandingFileError``: 2, ``BatchBlocked``: 3).
"""

from __future__ import annotations

import re
import sys
from itertools import pairwise

_FEATURES = (
    "build the feature layer first (`python -m ml ingest PATH…`, then the build_features DAG; `make demo` does both)"
)
_TAGS = "run the finetune_tagger and backfill_tags DAGs first (or `python -m ml tags train` and `tags backfill`)"
_PUBLISH = "run the publish_recommendations DAG first"
# which step creates a table, by the start of its qualified name (first match wins)
_CREATED_BY: tuple[tuple[str, str], ...] = (
    ("raw.", "load landing files first (`python -m ml ingest PATH…` or the ingest_events DAG)"),
    ("staging.", _FEATURES),
    ("intermediate.", _FEATURES),
    ("marts.", _FEATURES),
    ("reference.", _FEATURES),
    ("ml.user_segments", "run the build_features DAG first"),
    ("ml.category_", "run the build_features DAG first"),
    ("ml.tag_labels", "load labels first (`python -m ml tags labels load PATH`)"),
    ("ml.item_tags", _TAGS),
    ("ml.user_interest_profiles", _TAGS),
    ("ml.tag", _TAGS),
    ("ml.policy_", "run the evaluate_policies DAG first"),
    ("ml.logged_slates", _PUBLISH),
    ("ml.slate_contexts", _PUBLISH),
    ("ml.shop_days", "run `python -m ml demo` first (the living shop)"),
    ("serving.", _PUBLISH),
    ("registry.", "run the retrain_models DAG first"),
    ("quality.", "run the ingest_events and build_features DAGs first (their data-quality gates)"),
)


class UsageError(Exception):
    """A problem the user can fix; the message says what is wrong and how to fix it."""

    exit_code = 2


class MissingInput(UsageError):
    """Something a command reads does not exist yet: a file, a table, a model version."""


def created_by(table: str) -> str:
    """What to run so that ``table`` (``schema.name``) exists."""
    lowered = table.lower()
    for prefix, step in _CREATED_BY:
        if lowered.startswith(prefix):
            return step
    return "run the pipeline first (`make demo`, or the DAG that writes it)"


def missing_table(exc: BaseException, where: str) -> MissingInput | None:
    """A :class:`MissingInput` naming the table and the step that creates it when ``exc`` is
    DuckDB's or PostgreSQL's "table does not exist" (``where`` names the warehouse), else None."""
    table = _missing_table_name(exc)
    if table is None:
        return None
    return MissingInput(f"table {table} does not exist in the warehouse {where}: {created_by(table)}")


def _missing_table_name(exc: BaseException) -> str | None:
    message = str(exc)
    duckdb = sys.modules.get("duckdb")
    if duckdb is not None and isinstance(exc, duckdb.CatalogException):
        m = re.search(r'Table with name "?([\w.]+?)"? does not exist', message)
        if m is None:
            return None
        name = m.group(1)
        # DuckDB names the table without its schema when the schema exists: the query's
        # underlined name has it
        underlined = _underlined(message)
        return underlined if "." not in name and underlined and underlined.endswith(f".{name}") else name
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(exc, psycopg.errors.UndefinedTable):
        m = re.search(r'relation "([^"]+)" does not exist', message)
        return m.group(1) if m else None
    return None


def _underlined(message: str) -> str | None:
    """The text a DuckDB error underlines with ``^`` in its ``LINE n:`` quote of the query."""
    lines = message.splitlines()
    for line, marks in pairwise(lines):
        start = marks.find("^")
        if line.startswith("LINE ") and start >= 0:
            end = start + len(marks[start:].rstrip())
            return line[start:end].replace('"', "")
    return None
