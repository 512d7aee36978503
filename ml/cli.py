"""Command-line entry point. Each module in ``ml/commands/`` adds its sub-commands through a
``register(subparsers)`` function, so a new command is a new file, not an edit here.

A known input problem ends a command with one line, ``error: <what is wrong and how to fix it>``,
on stderr and its exit code (2 unless the error says otherwise), without a traceback: an error
that carries an ``exit_code`` (:class:`ml.errors.UsageError`, ``LandingFileError``, …), a plain
``LookupError`` (the library's "run X first"), a file the user named that is not there, a table
the command reads that no step has created yet, an unreachable PostgreSQL server. Anything else
is a bug and shows its traceback; ``-v`` shows the traceback of the known ones too. Ctrl-C exits
130.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import ml.commands
from ml.errors import MissingInput, UsageError, missing_table

log = logging.getLogger(__name__)
# commands that build warehouses of their own: a missing table there is a bug, not a step the
# user has yet to run
_OWN_WAREHOUSES = {"bench", "demo"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ml", description="Interestflow command line")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging, tracebacks of every error")
    sub = parser.add_subparsers(dest="command", required=True)
    for mod in sorted(pkgutil.iter_modules(ml.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"ml.commands.{mod.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        known = user_error(exc, args)
        if known is None:
            raise
        log.debug("the error below came from here", exc_info=True)
        print(f"error: {known}", file=sys.stderr)
        return int(known.exit_code)


def user_error(exc: Exception, args: argparse.Namespace) -> UsageError | None:
    """``exc`` as the one-line error the user sees, or None when it is a bug."""
    if isinstance(exc, UsageError):
        return exc
    code = getattr(exc, "exit_code", None)
    if isinstance(code, int) and not isinstance(code, bool):
        known = UsageError(str(exc))
        known.exit_code = code
        return known
    if type(exc) is LookupError:  # not KeyError or IndexError: those are bugs
        return MissingInput(str(exc))
    if isinstance(exc, OSError) and _names_user_path(exc, args):
        if exc.filename is not None and exc.strerror:
            return MissingInput(f"{exc.filename}: {exc.strerror}")
        return MissingInput(str(exc))
    if args.command in _OWN_WAREHOUSES:
        return None
    where = _warehouse_display(args)
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(exc, psycopg.OperationalError) and "connect" in str(exc):
        first = str(exc).strip().splitlines()[0]
        return UsageError(f"cannot reach the PostgreSQL warehouse {where}: {first} (is the server up, the URL right?)")
    return missing_table(exc, where)


def _names_user_path(exc: OSError, args: argparse.Namespace) -> bool:
    """Whether ``exc`` is about a path given on the command line (its file name, or, when it has
    none, its message: ``FileNotFoundError(f"{path}: …")``)."""
    given = list(_paths(vars(args).values()))
    names = {str(p) for p in given} | {str(p.expanduser().resolve()) for p in given}
    if exc.filename is not None:
        return str(exc.filename) in names or str(Path(str(exc.filename)).resolve()) in names
    return isinstance(exc, FileNotFoundError) and any(n in str(exc) for n in names)


def _paths(values: Iterable[object]) -> Iterator[Path]:
    for v in values:
        if isinstance(v, Path):
            yield v
        elif isinstance(v, list | tuple):
            yield from _paths(v)


def _warehouse_display(args: argparse.Namespace) -> str:
    from ml.warehouse import Warehouse

    try:
        return Warehouse.from_env(getattr(args, "warehouse", None)).display
    except UsageError:
        return str(getattr(args, "warehouse", None) or "")
