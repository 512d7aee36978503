"""No traceback reaches the user of ``python -m ml``. Every sub-command, found by walking the
parser (a new command is covered without an edit here), is run before its inputs exist (an
empty state folder and warehouse) and with nonsense arguments: it ends with a one-line
``error: …`` and exit 2, or succeeds saying there is nothing yet. A genuine bug still shows
its traceback, Ctrl-C exits 130 quietly.

Most cases call ``ml.cli.main`` in this process (a ``python -m ml`` start costs about a
second); a few go through the real entry point in a subprocess."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ml import warehouse as warehouse_module
from ml.cli import build_parser, main
from ml.warehouse import Warehouse, WarehouseError, parse_url

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
Leaf = tuple[tuple[str, ...], argparse.ArgumentParser]


def leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[Leaf]:
    """Every runnable sub-command (``("tags", "labels", "load")``, …) and its parser."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, sub in subs[0].choices.items():
        yield from leaves(sub, (*path, name))


LEAVES = dict(leaves(build_parser()))
# commands that, given valid arguments, run for minutes or replace this process: only their
# argument errors and the quick failures in QUICK_FAILURES run here
LONG_RUNNING = {("airflow", "standalone"), ("demo",)} | {p for p in LEAVES if p[0] == "bench"}
# commands whose required arguments, filled with a made-up value, are valid
FILLED_IS_VALID = {
    ("shop", "generate"): "generates the tiny shop into the (new) --out folder",
    ("publish", "prune"): "--keep 1 with nothing published drops nothing",
}


def _arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]


def _made_up(action: argparse.Action, tmp: Path) -> str:
    if action.choices:
        return str(next(iter(action.choices)))
    if action.type is Path:
        return str(tmp / "missing" / action.dest)
    if action.type in (int, float):
        return "1"
    return "nonsense"


def filled(parser: argparse.ArgumentParser, tmp: Path) -> list[str]:
    """Made-up values for the required arguments: a path that does not exist, a name no one
    defined, the first of the choices, 1 for a number."""
    argv: list[str] = []
    for a in _arguments(parser):
        if a.option_strings and a.required:
            argv += [a.option_strings[0], _made_up(a, tmp)]
        elif not a.option_strings:
            argv.append(_made_up(a, tmp))
    return argv


def _id(path: tuple[str, ...]) -> str:
    return "-".join(path) or "root"


@pytest.fixture()
def empty_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Nothing built yet: an empty state folder, landing folder and warehouse."""
    monkeypatch.setenv("INTERESTFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("INTERESTFLOW_LANDING", str(tmp_path / "landing"))
    monkeypatch.setenv("INTERESTFLOW_ARTIFACTS", str(tmp_path / "artifacts"))
    monkeypatch.setenv("INTERESTFLOW_DATA_DOCS", str(tmp_path / "data_docs"))
    monkeypatch.delenv("INTERESTFLOW_WAREHOUSE", raising=False)
    # a bench sets its own SIGTERM handler in the process that runs it: keep pytest's
    handler = signal.getsignal(signal.SIGTERM)
    yield tmp_path
    signal.signal(signal.SIGTERM, handler)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``python -m ml ARGV`` in this process: exit code, stdout, stderr. An exception other
    than SystemExit is a traceback the user would see, so it fails the test."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    return code, out, err


def one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


def test_the_parser_walk_finds_every_command():
    assert {("campaign", "report"), ("tags", "labels", "load"), ("bench", "loop"), ("demo",)} <= set(LEAVES)
    assert set(LEAVES) >= LONG_RUNNING | set(FILLED_IS_VALID)


@pytest.mark.parametrize("path", [p for p in LEAVES if p not in LONG_RUNNING], ids=_id)
def test_every_command_before_its_inputs_exist(path, empty_state, capsys):
    """Required arguments get made-up values (a missing file, an unknown name), the state is
    empty: a one-line error and exit 2, or exit 0 saying there is nothing yet."""
    args = filled(LEAVES[path], empty_state)
    code, out, err = run([*path, *args], capsys)
    if args and path not in FILLED_IS_VALID:
        assert code == 2, (out, err)
    else:
        assert code in (0, 2), (out, err)
    if code:  # (`publish rollback` still prints its error on stdout)
        assert one_line_error(err + out)


@pytest.mark.parametrize("path", list(LEAVES), ids=_id)
def test_every_command_rejects_nonsense_arguments(path, tmp_path, capsys):
    """An unknown option, missing required arguments, a word for a number, a value outside
    the choices: argparse's usage line and exit 2 before anything runs (so long-running
    commands are checked too)."""
    parser = LEAVES[path]
    required = filled(parser, tmp_path)
    cases = [[*required, "--no-such-option"]]
    if required:
        cases.append([])
    for a in _arguments(parser):
        if not a.option_strings:
            continue
        if a.type in (int, float):
            cases.append([*required, a.option_strings[0], "nonsense"])
        if a.choices and "nonsense" not in a.choices:
            cases.append([*required, a.option_strings[0], "nonsense"])
    for argv in cases:
        with pytest.raises(SystemExit) as exc:
            build_parser().parse_args([*path, *argv])
        assert exc.value.code == 2, argv
        err = capsys.readouterr().err
        assert "usage:" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "path",
    [p for p, parser in LEAVES.items() if "--warehouse" in parser._option_string_actions and p not in LONG_RUNNING],
    ids=_id,
)
def test_every_warehouse_option_rejects_what_is_no_warehouse(path, empty_state, capsys):
    required = filled(LEAVES[path], empty_state)
    code, out, err = run([*path, *required, "--warehouse", "nonsense"], capsys)
    assert code == 2, (out, err)
    line = one_line_error(err)
    if not required:  # (a made-up required argument may be what is reported)
        assert "unsupported warehouse 'nonsense'" in line and "postgresql://" in line


# quick failures of commands that would otherwise run for minutes, and inputs a made-up value
# does not reach: (argv, what the error must say)
QUICK_FAILURES = [
    (["campaign", "report", "winter_outdoor_sale"], "staging.stg_shop__events does not exist"),
    (["tags", "train", "--model", "naive_bayes"], "run build_features"),
    (["tags", "train", "--params", "notjson"], "--params is not JSON"),
    (["tags", "backfill", "--start", "2026-01-01", "--end", "2026-01-02"], "no champion tagger"),
    (["tags", "backfill", "--start", "2026-01-02", "--end", "2026-01-01"], "before start date"),
    (["tags", "backfill", "--start", "2026-01-01", "--end", "2026-01-02", "--version", "v9"], "no such model version"),
    (["tags", "recall", "--truth", "{README}"], "ml.user_interest_profiles_current does not exist"),
    (["policy", "override", "greedy", "--reason", "x", "--params", "[1]"], "must be a JSON object"),
    (["data", "fetch", "obd", "--path", "{tmp}"], "not an Open Bandit Dataset folder"),
    (["ingest", "{tmp}"], "no landing files"),
    (["bench", "candidates", "--models", "nonsense", "--out", "{tmp}/c"], "unknown models"),
    (["bench", "candidates", "--candidates", "{tmp}/none.json", "--out", "{tmp}/c"], "none.json"),
    (["bench", "loop", "--arms", "nonsense", "--out", "{tmp}/l"], "unknown arms"),
    (["bench", "loop", "--conf", "notjson", "--out", "{tmp}/l"], "--conf is not JSON"),
    (["bench", "ope", "--path", "{tmp}/none", "--out", "{tmp}/o"], "not an Open Bandit Dataset folder"),
    (["bench", "recsys", "--path", "{tmp}/none", "--out", "{tmp}/r"], "no MovieLens-100k files"),
    (["demo", "--days", "-1"], "--days must be >= 0"),
    (["bench", "features", "--size", "nonsense", "--workdir", "{tmp}/f"], "invalid choice: 'nonsense'"),
    (["bench", "recsys", "--dataset", "synthetic", "--size", "nonsense", "--out", "{tmp}/r"], "invalid choice"),
    (
        ["bench", "marketing", "--campaign", "nonsense", "--size", "tiny", "--users", "10", "--out", "{tmp}/m"],
        "unknown campaign 'nonsense'",
    ),
    (
        ["bench", "simulate", "--policies", "nonsense", "--size", "tiny", "--out", "{tmp}/s"],
        "unknown policy 'nonsense'",
    ),
    (["bench", "simulate", "--days", "-1", "--size", "tiny", "--out", "{tmp}/s"], "must be at least 1"),
    (["bench", "loop", "--days", "0", "--out", "{tmp}/l"], "must be at least 1"),
]


@pytest.mark.parametrize(("argv", "says"), [pytest.param(a, s, id=" ".join(a)) for a, s in QUICK_FAILURES])
def test_quick_failures_say_what_is_missing(argv, says, empty_state, capsys):
    argv = [a.format(tmp=empty_state, README=ROOT / "README.md") for a in argv]
    code, out, err = run(argv, capsys)
    assert code == 2, (out, err)
    assert says in err + out  # some older commands print their error on stdout


def test_a_bare_path_is_a_duckdb_warehouse_and_nonsense_lists_the_accepted_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_url("w.duckdb") == f"duckdb://{tmp_path / 'w.duckdb'}"
    assert parse_url(str(tmp_path / "x.db")) == f"duckdb://{tmp_path / 'x.db'}"
    (tmp_path / "plain").write_bytes(b"")
    assert parse_url("plain") == f"duckdb://{tmp_path / 'plain'}"  # an existing file, whatever its name
    for url in ("duckdb:///a/b.duckdb", "postgresql://u@h:5432/db", "postgres://h/db"):
        assert parse_url(url) == url
    for text in ("nonsense", "mysql://h/db", "duckdb:", "duckdb:w.duckdb", str(tmp_path)):
        with pytest.raises(WarehouseError, match="duckdb:///"):
            parse_url(text)
    monkeypatch.setenv("INTERESTFLOW_WAREHOUSE", "nonsense")
    with pytest.raises(WarehouseError, match=r"^INTERESTFLOW_WAREHOUSE: unsupported"):
        Warehouse.from_env()
    assert Warehouse.from_env("postgresql://ana:s3cret@db:6543/shop").display == "postgresql://db:6543/shop"


def test_a_warehouse_locked_by_another_process_names_it(tmp_path, monkeypatch, capsys):
    db = tmp_path / "busy.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(db)!r}); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        monkeypatch.setattr(warehouse_module, "LOCK_WAIT_SECONDS", 1.0)
        code, _, err = run(["policy", "current", "--warehouse", str(db)], capsys)
    finally:
        holder.kill()
        holder.wait()
    assert code == 2
    line = one_line_error(err)
    assert f"in use by PID {holder.pid}" in line and "retry" in line


def test_an_unreachable_postgresql_server_is_one_line_without_the_password(empty_state, capsys):
    code, _, err = run(["policy", "current", "--warehouse", "postgresql://ana:s3cret@127.0.0.1:1/shop"], capsys)
    assert code == 2
    line = one_line_error(err)
    assert "cannot reach the PostgreSQL warehouse postgresql://127.0.0.1:1/shop" in line and "s3cret" not in err


def test_a_bug_keeps_its_traceback_and_ctrl_c_exits_130(empty_state, capsys, monkeypatch):
    import duckdb

    from ml.bench import simulate
    from ml.commands import shop

    def bug(args):
        raise KeyError("a genuine bug")

    monkeypatch.setattr(shop, "_vocabulary", bug)
    with pytest.raises(KeyError):
        main(["shop", "vocabulary"])

    def missing_table_in_a_bench(args):
        raise duckdb.CatalogException("Catalog Error: Table with name nope does not exist!")

    monkeypatch.setattr(simulate, "run", missing_table_in_a_bench)  # a bench builds its own warehouse
    with pytest.raises(duckdb.CatalogException):
        main(["bench", "simulate"])

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(shop, "_vocabulary", interrupted)
    assert run(["shop", "vocabulary"], capsys)[0] == 130


@pytest.mark.integration
def test_a_postgresql_warehouse_before_the_feature_layer(pg_warehouse, capsys):
    code, _, err = run(["campaign", "report", "winter_outdoor_sale", "--warehouse", pg_warehouse.url], capsys)
    assert code == 2
    line = one_line_error(err)
    assert "staging.stg_shop__events does not exist" in line and "build_features" in line


def _python_m_ml(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ml", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_the_real_entry_point(tmp_path):
    """``python -m ml`` in a fresh process, before anything is built."""
    env = {k: v for k, v in os.environ.items() if k != "INTERESTFLOW_WAREHOUSE"}
    env.update(
        INTERESTFLOW_HOME=str(tmp_path / "home"),
        INTERESTFLOW_LANDING=str(tmp_path / "landing"),
        INTERESTFLOW_ARTIFACTS=str(tmp_path / "artifacts"),
    )
    report = _python_m_ml(["campaign", "report", "winter_outdoor_sale"], env)
    assert report.returncode == 2 and "Traceback" not in report.stderr
    assert report.stderr.startswith("error: table staging.stg_shop__events does not exist in the warehouse ")
    assert f"{tmp_path}/home/warehouse.duckdb: build the feature layer first" in report.stderr

    bare = _python_m_ml(["policy", "current", "--warehouse", str(tmp_path / "bare.duckdb")], env)
    assert bare.returncode == 0, bare.stderr
    assert json.loads(bare.stdout)["policy"] and (tmp_path / "bare.duckdb").exists()

    nonsense = _python_m_ml(["registry", "list"], {**env, "INTERESTFLOW_WAREHOUSE": "nonsense"})
    assert nonsense.returncode == 2 and "Traceback" not in nonsense.stderr
    assert nonsense.stderr.startswith("error: INTERESTFLOW_WAREHOUSE: unsupported warehouse 'nonsense'")

    usage = _python_m_ml(["ingest", "--no-such-option"], env)
    assert usage.returncode == 2 and "usage:" in usage.stderr and "Traceback" not in usage.stderr
