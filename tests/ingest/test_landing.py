"""Landing ingest: one test per bad-input rule and per whole-file problem.

Every row case asserts the accounting (rows == accepted + quarantined), the reason code, that
the bad row's original values are in raw.quarantine and that no good row was lost.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from ml.config import IngestSettings
from ml.ingest.landing import RULES, BatchBlocked, LandingFileError, ingest_file, ingest_paths
from tests.ingest.files import write_landing
from tests.ingest.test_values_that_fit import EVENT_BREAKS, ITEM_BREAKS, USER_BREAKS

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)  # the tiny shop's events end on 2026-10-31
N_BASE = 200


def _count(wh, sql, params=None) -> int:
    return int(wh.query(sql, params)["n"].iloc[0])


@pytest.fixture()
def catalogue(tiny_shop, warehouse):
    """A warehouse holding the tiny shop's catalogue (its landing gate is tested elsewhere)."""
    ingest_file(tiny_shop / "items.parquet", warehouse, now=NOW, gate=False)
    return warehouse


@pytest.fixture()
def events(tiny_shop) -> pd.DataFrame:
    """N_BASE good events of the tiny shop (a fresh copy per test)."""
    return pd.read_parquet(tiny_shop / "events.parquet").head(N_BASE).reset_index(drop=True)


def _assert_accounting(wh, report, good_ids: set[str], table: str = "events", key: str = "event_id") -> None:
    assert report.rows == report.accepted + report.quarantined
    assert report.quarantined == sum(report.reasons.values())
    stored = set(wh.query(f"select {key} from raw.{table} where _batch_id = ?", [report.batch_id])[key])
    assert stored == good_ids, "a good row was lost or a bad one accepted"
    n_q = _count(wh, "select count(*) as n from raw.quarantine where batch_id = ?", [report.batch_id])
    assert n_q == report.quarantined


def _quarantined(wh, batch_id: str) -> pd.DataFrame:
    q = wh.query(
        "select row_number, reason, original from raw.quarantine where batch_id = ? order by row_number", [batch_id]
    )
    q["original"] = q["original"].map(json.loads)
    return q


# (reason, file suffix, how to break row 3 (and row 7 where two rows), expected original value check)
ROW_CASES = {
    "missing_required": (".csv", lambda df: df.assign(user_id=df["user_id"].where(df.index != 3, ""))),
    "wrong_type_number": (
        ".csv",
        lambda df: df.assign(price=df["price"].astype(object).where(df.index != 3, "12,50€")),
    ),
    "wrong_type_integer": (
        ".jsonl",
        lambda df: df.assign(quantity=df["quantity"].astype(object).where(df.index != 3, 2.5)),
    ),
    "wrong_type_time": (
        ".csv",
        lambda df: df.assign(event_time=df["event_time"].astype(str).where(df.index != 3, "yesterday")),
    ),
    "unknown_event_type": (
        ".parquet",
        lambda df: df.assign(event_type=df["event_type"].where(df.index != 3, "teleport")),
    ),
    "missing_item_id": (
        ".parquet",
        lambda df: df.assign(
            event_type=df["event_type"].where(df.index != 3, "view"), item_id=df["item_id"].where(df.index != 3, None)
        ),
    ),
    "negative_price": (".parquet", lambda df: df.assign(price=df["price"].where(df.index != 3, -4.0))),
    "absurd_price": (".csv", lambda df: df.assign(price=df["price"].where(df.index != 3, 2.5e6))),
    "bad_quantity": (".parquet", lambda df: df.assign(quantity=df["quantity"].where(df.index != 3, 0))),
    "bad_rating": (".jsonl", lambda df: df.assign(rating=df["rating"].where(df.index != 3, 9))),
    "bad_position": (".parquet", lambda df: df.assign(position=df["position"].where(df.index != 3, 0))),
    "future_time": (
        ".parquet",
        lambda df: df.assign(
            event_time=df["event_time"].where(df.index != 3, pd.Timestamp("2026-11-01 15:00", tz="UTC"))
        ),
    ),
    "before_shop_start": (
        ".csv",
        lambda df: df.assign(event_time=df["event_time"].astype(str).where(df.index != 3, "2019-06-01T10:00:00Z")),
    ),
    "unknown_item": (
        ".parquet",
        lambda df: df.assign(
            event_type=df["event_type"].where(df.index != 3, "view"),
            item_id=df["item_id"].where(df.index != 3, "I999999"),
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(ROW_CASES))
def test_each_bad_row_rule_quarantines_only_the_bad_row(case, catalogue, events, tmp_path):
    suffix, breaker = ROW_CASES[case]
    reason = "wrong_type" if case.startswith("wrong_type") else case
    bad = breaker(events)
    path = write_landing(bad, tmp_path / f"events-{case}{suffix}")
    report = ingest_file(path, catalogue, now=NOW)
    assert report.status == "accepted"
    assert report.reasons == {reason: 1}, report.reasons
    _assert_accounting(catalogue, report, set(events["event_id"]) - {events.loc[3, "event_id"]})
    q = _quarantined(catalogue, report.batch_id)
    assert q["row_number"].tolist() == [4] and q["reason"].tolist() == [reason]
    assert q["original"].iloc[0]["event_id"] == events.loc[3, "event_id"]


def test_every_rule_has_a_test():
    tested = {c if not c.startswith("wrong_type") else "wrong_type" for c in ROW_CASES}
    tested |= {
        "malformed_row",
        "duplicate_row",
        "duplicate_event_id",
        "duplicate_key",
        "bad_category_path",
        "batch_blocked",
    }
    tested |= {reason for breaks in (EVENT_BREAKS, ITEM_BREAKS, USER_BREAKS) for _, _, reason in breaks.values()}
    assert set(RULES) == tested


def test_exact_duplicate_rows_are_kept_once(catalogue, events, tmp_path):
    doubled = pd.concat([events, events.iloc[[5, 6]]], ignore_index=True)
    report = ingest_file(write_landing(doubled, tmp_path / "events-dups.parquet"), catalogue, now=NOW)
    assert report.rows == N_BASE + 2 and report.reasons == {"duplicate_row": 2}
    _assert_accounting(catalogue, report, set(events["event_id"]))
    assert _quarantined(catalogue, report.batch_id)["row_number"].tolist() == [N_BASE + 1, N_BASE + 2]


def test_repeated_event_id_with_other_values_is_kept_once(catalogue, events, tmp_path):
    again = events.iloc[[10]].assign(user_id="U_other")
    report = ingest_file(
        write_landing(pd.concat([events, again], ignore_index=True), tmp_path / "events-rep.csv"), catalogue, now=NOW
    )
    assert report.reasons == {"duplicate_event_id": 1}
    _assert_accounting(catalogue, report, set(events["event_id"]))
    stored_user = catalogue.query("select user_id from raw.events where event_id = ?", [events.loc[10, "event_id"]])
    assert stored_user["user_id"].tolist() == [events.loc[10, "user_id"]]  # the first one wins


def test_repeated_event_ids_across_batches_are_kept_once(catalogue, events, tmp_path):
    first = ingest_file(write_landing(events.head(120), tmp_path / "events-a.parquet"), catalogue, now=NOW)
    second = ingest_file(write_landing(events.iloc[100:], tmp_path / "events-b.parquet"), catalogue, now=NOW)
    assert first.reasons == {} and second.reasons == {"duplicate_event_id": 20}
    _assert_accounting(catalogue, second, set(events["event_id"].iloc[120:]))
    assert _count(catalogue, "select count(*) as n from raw.events") == N_BASE
    assert _count(catalogue, "select count(distinct event_id) as n from raw.events") == N_BASE


def test_malformed_csv_row_is_quarantined_with_its_raw_line(catalogue, events, tmp_path):
    path = write_landing(events, tmp_path / "events-ragged.csv")
    lines = path.read_text().splitlines(keepends=True)
    lines[5] = lines[5].rstrip("\n") + ",surplus,fields\n"  # data row 5 now has too many fields
    path.write_text("".join(lines))
    report = ingest_file(path, catalogue, now=NOW)
    assert report.reasons == {"malformed_row": 1}
    _assert_accounting(catalogue, report, set(events["event_id"]) - {events.loc[4, "event_id"]})
    q = _quarantined(catalogue, report.batch_id)
    assert q["row_number"].tolist() == [5] and q["original"].iloc[0]["_raw_line"].endswith("surplus,fields")


def test_malformed_json_line_is_quarantined(catalogue, events, tmp_path):
    path = write_landing(events, tmp_path / "events-badline.jsonl")
    lines = path.read_text().splitlines(keepends=True)
    lines[7] = '{"event_id": "E-broken", "user_id": \n'
    path.write_text("".join(lines))
    report = ingest_file(path, catalogue, now=NOW)
    assert report.reasons == {"malformed_row": 1}
    _assert_accounting(catalogue, report, set(events["event_id"]) - {events.loc[7, "event_id"]})


@pytest.mark.parametrize("as_array", [False, True])
def test_a_lone_surrogate_escape_is_a_malformed_row_not_a_crash(catalogue, events, tmp_path, as_array):
    # "\ud800" is valid JSON but not text: no UTF-8 file or database column can hold it
    path = write_landing(events, tmp_path / ("events-surrogate.json" if as_array else "events-surrogate.jsonl"))
    records = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    records[3]["query"] = "caf\ud800"
    texts = [json.dumps(r) for r in records]  # written as the escape "caf\\ud800"
    path.write_text("[" + ",".join(texts) + "]" if as_array else "\n".join(texts) + "\n")
    report = ingest_file(path, catalogue, now=NOW)
    assert report.reasons == {"malformed_row": 1}
    _assert_accounting(catalogue, report, set(events["event_id"]) - {events.loc[3, "event_id"]})
    q = _quarantined(catalogue, report.batch_id)
    assert q["row_number"].tolist() == [4] and "\\ud800" in q["original"].iloc[0]["_raw_line"]


def test_item_rules_category_path_and_repeated_key(tiny_shop, warehouse, tmp_path):
    items = pd.read_parquet(tiny_shop / "items.parquet")
    bad = items.copy()
    bad.loc[2, "category_path"] = "Women >  > Boots"
    bad = pd.concat([bad, bad.iloc[[4]].assign(title="Another title")], ignore_index=True)
    report = ingest_file(write_landing(bad, tmp_path / "items.csv"), warehouse, now=NOW)
    assert report.reasons == {"bad_category_path": 1, "duplicate_key": 1}
    _assert_accounting(warehouse, report, set(items["item_id"]) - {items.loc[2, "item_id"]}, "items", "item_id")


def test_items_resent_unchanged_are_duplicates_and_changed_ones_new_versions(tiny_shop, warehouse, tmp_path):
    items = pd.read_parquet(tiny_shop / "items.parquet")
    ingest_file(tiny_shop / "items.parquet", warehouse, now=NOW)
    update = items.head(10).copy()
    update.loc[0, "price"] = update.loc[0, "price"] + 1.0
    report = ingest_file(write_landing(update, tmp_path / "items-update.csv"), warehouse, now=NOW)
    assert report.accepted == 1 and report.reasons == {"duplicate_row": 9}
    _assert_accounting(warehouse, report, {items.loc[0, "item_id"]}, "items", "item_id")
    versions = _count(warehouse, "select count(*) as n from raw.items where item_id = ?", [items.loc[0, "item_id"]])
    assert versions == 2


def test_users_wrong_time_is_quarantined(tiny_shop, warehouse, tmp_path):
    users = pd.read_parquet(tiny_shop / "users.parquet").astype({"signup_time": str})
    users.loc[1, "signup_time"] = "31/02/2026"
    report = ingest_file(write_landing(users, tmp_path / "users.csv"), warehouse, now=NOW)
    assert report.reasons == {"wrong_type": 1}
    _assert_accounting(warehouse, report, set(users["user_id"]) - {users.loc[1, "user_id"]}, "users", "user_id")


# ---- blocking -------------------------------------------------------------------------------


def test_batch_above_the_threshold_is_blocked_and_loses_no_row(catalogue, events, tmp_path):
    bad = events.copy()
    bad.loc[:19, "price"] = -1.0  # 10 % bad > 5 %
    path = write_landing(bad, tmp_path / "events-blocked.parquet")
    with pytest.raises(BatchBlocked) as exc:
        ingest_file(path, catalogue, now=NOW)
    report = exc.value.report
    assert report.status == "blocked" and report.accepted == 0
    assert report.reasons == {"negative_price": 20, "batch_blocked": N_BASE - 20}
    _assert_accounting(catalogue, report, set())
    assert _count(catalogue, "select count(*) as n from raw.events") == 0
    q = _quarantined(catalogue, report.batch_id)
    assert set(q["original"].map(lambda o: o["event_id"])) == set(events["event_id"])  # every row recoverable
    # raising the threshold and re-ingesting the same file accepts the good rows, once
    loose = replace(IngestSettings(), quarantine_threshold=0.2)
    again = ingest_file(path, catalogue, loose, now=NOW)
    assert again.status == "accepted" and again.reasons == {"negative_price": 20}
    _assert_accounting(catalogue, again, set(events["event_id"].iloc[20:]))


def test_duplicates_do_not_count_towards_blocking(catalogue, events, tmp_path):
    ingest_file(write_landing(events, tmp_path / "events-first.parquet"), catalogue, now=NOW)
    report = ingest_file(
        write_landing(events.assign(session_id="resent"), tmp_path / "events-resent.parquet"), catalogue, now=NOW
    )
    assert report.status == "accepted" and report.reasons == {"duplicate_event_id": N_BASE}


# ---- whole-file problems: exit code 2, nothing written --------------------------------------


def _nothing_written(wh) -> bool:
    if not wh.path.exists():
        return True
    n = _count(wh, "select count(*) as n from raw.events") + _count(wh, "select count(*) as n from raw.quarantine")
    return n == 0


def _truncate(path: Path, keep: float = 0.6) -> Path:
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    return path


FILE_CASES = {
    "truncated_parquet": ("events.parquet", lambda p, df: _truncate(write_landing(df, p)), "truncated Parquet"),
    "unreadable_parquet": (
        "events.parquet",
        lambda p, df: p.write_bytes(b"PAR1" + b"\x00garbage" * 50 + b"PAR1"),
        "unreadable Parquet",
    ),
    "truncated_csv": (
        "events.csv",
        lambda p, df: p.write_text(write_landing(df, p).read_text().rstrip("\n")[:-30]),
        "truncated CSV",
    ),
    "truncated_jsonl": (
        "events.jsonl",
        lambda p, df: p.write_text(write_landing(df, p).read_text().rstrip("\n")[:-30]),
        "truncated JSON Lines",
    ),
    "json_named_csv": ("events.csv", lambda p, df: p.write_text('{"event_id": "e1"}\n'), "looks like JSON"),
    "parquet_named_csv": ("events.csv", lambda p, df: df.to_parquet(p, index=False), "the file is Parquet"),
    "csv_named_jsonl": ("events.jsonl", lambda p, df: df.to_csv(p, index=False), "line 1 is not JSON"),
    "csv_named_parquet": ("events.parquet", lambda p, df: df.to_csv(p, index=False), "not a Parquet file"),
    "unsupported_extension": ("events.xlsx", lambda p, df: p.write_bytes(b"PK\x03\x04rest"), "unsupported format"),
    "not_utf8": (
        "events.csv",
        lambda p, df: p.write_bytes(write_landing(df, p).read_bytes().replace(b"view", b"vi\xe9w", 1)),
        "not UTF-8",
    ),
    "missing_required_columns": (
        "events.csv",
        lambda p, df: df.drop(columns=["event_time", "event_type"]).to_csv(p, index=False),
        "missing required columns: event_time, event_type",
    ),
    "unknown_table_name": ("orders.csv", lambda p, df: df.to_csv(p, index=False), "cannot tell which table"),
}


@pytest.mark.parametrize("case", sorted(FILE_CASES))
def test_whole_file_problem_is_a_clear_error_and_writes_nothing(case, catalogue, events, tmp_path):
    name, make, message = FILE_CASES[case]
    path = tmp_path / name
    make(path, events)
    with pytest.raises(LandingFileError) as exc:
        ingest_file(path, catalogue, now=NOW)
    assert exc.value.exit_code == 2
    assert message in str(exc.value) and str(path) in str(exc.value)
    assert _nothing_written(catalogue)


def test_empty_file_is_a_batch_of_zero_rows(catalogue, tmp_path):
    statuses = []
    for name in ("events-empty.csv", "events-empty.jsonl", "events-empty.parquet"):
        (tmp_path / name).write_bytes(b"")
        report = ingest_file(tmp_path / name, catalogue, now=NOW)
        assert (report.rows, report.accepted, report.quarantined) == (0, 0, 0)
        statuses.append(report.status)
    assert statuses == ["accepted", "already_ingested", "already_ingested"]  # same (empty) bytes, same batch
    header_only = tmp_path / "events-header.csv"
    header_only.write_text("event_id,event_time,user_id,event_type\n")
    assert ingest_file(header_only, catalogue, now=NOW).rows == 0


def test_extra_columns_are_kept_aside_not_fatal(catalogue, events, tmp_path):
    extra = events.assign(campaign="autumn", device=["ios", "web"] * (N_BASE // 2))
    report = ingest_file(write_landing(extra, tmp_path / "events-extra.csv"), catalogue, now=NOW)
    assert report.extra_columns == ["campaign", "device"] and report.accounting()["extra_columns"] == [
        "campaign",
        "device",
    ]
    _assert_accounting(catalogue, report, set(events["event_id"]))
    kept = catalogue.query("select _extra from raw.events where event_id = ?", [events.loc[1, "event_id"]])
    assert json.loads(kept["_extra"].iloc[0]) == {"campaign": "autumn", "device": "web"}


def test_tiny_shop_lands_completely_and_reingest_is_a_no_op(tiny_shop, warehouse):
    first = ingest_paths([tiny_shop], warehouse)
    assert [r.table for r in first] == ["items", "users", "events"]
    for r in first:
        assert r.rows == r.accepted + r.quarantined and r.quarantined == 0 and r.gate_passed
    n_events = _count(warehouse, "select count(*) as n from raw.events")
    assert n_events == first[2].rows
    again = ingest_paths([tiny_shop], warehouse)
    assert [r.status for r in again] == ["already_ingested"] * 3
    assert [r.batch_id for r in again] == [r.batch_id for r in first]
    assert [r.accepted for r in again] == [r.accepted for r in first]
    assert _count(warehouse, "select count(*) as n from raw.events") == n_events
    gate_runs = warehouse.query("select gate, passed from quality.gate_runs order by gate")
    assert gate_runs["gate"].tolist() == ["landing_events", "landing_items", "landing_users"]
    assert gate_runs["passed"].all()


# ---- the command line ----------------------------------------------------------------------


def test_cli_prints_accounting_and_exits_0_2_3(catalogue, events, tmp_path, capsys):
    from ml.cli import main

    url = catalogue.url
    good = write_landing(events, tmp_path / "events-good.parquet")
    assert main(["ingest", str(good), "--warehouse", url]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(line) >= {"file", "rows", "accepted", "quarantined", "reasons", "batch_id"}
    assert line["rows"] == line["accepted"] + line["quarantined"] == N_BASE

    broken = tmp_path / "events-broken.csv"
    broken.write_bytes(b"event_id,event_time\n\xff\xfe\n")
    assert main(["ingest", str(broken), "--warehouse", url]) == 2
    assert "not UTF-8" in capsys.readouterr().err

    blocked = write_landing(
        events.assign(rating=9, event_id=events["event_id"] + "-b"), tmp_path / "events-blocked.parquet"
    )
    assert main(["ingest", str(blocked), "--warehouse", url]) == 3
    out = capsys.readouterr()
    line = json.loads(out.out.strip().splitlines()[-1])
    assert line["status"] == "blocked" and line["rows"] == line["accepted"] + line["quarantined"]
    assert "batch blocked" in out.err
