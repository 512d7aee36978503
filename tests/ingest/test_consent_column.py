"""The optional ``users.marketing_opt_out`` landing column: parsing, quarantine, older files."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from ml import columns as C
from ml.ingest.landing import ingest_file

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _stored(wh) -> pd.DataFrame:
    return wh.query("select user_id, marketing_opt_out, _batch_id from raw.users order by _ingested_at, _row_number")


def test_consent_is_an_optional_boolean_of_the_users_contract():
    assert C.LANDING["users"][C.MARKETING_OPT_OUT] == "bool"
    assert C.MARKETING_OPT_OUT not in C.REQUIRED["users"]


def test_boolean_spellings_parse_and_anything_else_is_quarantined(tiny_shop, warehouse, tmp_path):
    users = pd.read_parquet(tiny_shop / "users.parquet").head(40).astype({"marketing_opt_out": object})
    spellings = ["TRUE", "false", "Yes", "no", "1", "0", " y ", "N", "", None]
    users["marketing_opt_out"] = spellings * 4
    users.loc[7, "marketing_opt_out"] = "maybe"
    path = tmp_path / "users.csv"
    users.to_csv(path, index=False)
    report = ingest_file(path, warehouse, now=NOW)
    assert report.rows == 40 and report.reasons == {"wrong_type": 1}
    q = warehouse.query("select reason, original from raw.quarantine")
    assert q["reason"].tolist() == ["wrong_type"] and '"maybe"' in q["original"].iloc[0]
    stored = _stored(warehouse).set_index("user_id")["marketing_opt_out"]
    expect = [True, False, True, False, True, False, True, False, None, None]
    for i, uid in enumerate(users["user_id"]):
        if i == 7:
            assert uid not in stored.index
        elif expect[i % 10] is None:
            assert pd.isna(stored[uid])  # blank: not stated
        else:
            assert stored[uid] == expect[i % 10]


def test_a_file_without_the_column_loads_as_not_stated(tiny_shop, warehouse, tmp_path):
    users = pd.read_parquet(tiny_shop / "users.parquet")
    ingest_file(tiny_shop / "users.parquet", warehouse, now=NOW)
    opted = users.loc[users["marketing_opt_out"], "user_id"].head(3)
    old = users[users["user_id"].isin(opted)].drop(columns="marketing_opt_out").assign(country="PT")
    path = tmp_path / "users-old.csv"
    old.to_csv(path, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    report = ingest_file(path, warehouse, now=NOW)
    assert report.status == "accepted" and report.accepted == len(old) and report.extra_columns == []
    resent = _stored(warehouse).query("_batch_id == @report.batch_id").set_index("user_id")
    assert set(resent.index) == set(opted)
    assert resent["marketing_opt_out"].isna().all()  # not stated: staging keeps the earlier opt-out


def test_an_older_raw_table_gains_the_column(warehouse, tiny_shop):
    with warehouse.connect() as con:
        warehouse.ensure_schemas(con)
        warehouse.execute(
            con,
            "create table raw.users (user_id varchar, signup_time timestamptz, country varchar, _extra varchar, "
            "_batch_id varchar, _row_number bigint, _ingested_at timestamptz)",
        )
    report = ingest_file(tiny_shop / "users.parquet", warehouse, now=NOW)
    stored = _stored(warehouse)
    assert report.accepted == len(stored) and stored["marketing_opt_out"].notna().all()
    assert stored["marketing_opt_out"].sum() == pd.read_parquet(tiny_shop / "users.parquet")["marketing_opt_out"].sum()
