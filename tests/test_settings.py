"""The typed settings (``ml.settings``): read when needed, bad values named, secrets masked."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ml import config
from ml.config import IngestSettings
from ml.settings import SettingsError, effective, mask_url, settings
from tests.conftest import ROOT

pytestmark = pytest.mark.unit


def test_a_change_after_import_counts(monkeypatch, tmp_path):
    monkeypatch.delenv("INTERESTFLOW_WAREHOUSE", raising=False)
    monkeypatch.setenv("INTERESTFLOW_HOME", str(tmp_path / "a"))
    assert config.state_dir() == tmp_path / "a"
    monkeypatch.setenv("INTERESTFLOW_HOME", str(tmp_path / "b"))
    assert config.warehouse_url() == f"duckdb:///{tmp_path / 'b' / 'warehouse.duckdb'}"
    monkeypatch.setenv("INTERESTFLOW_PRICE_CAP", "250")
    assert IngestSettings().price_cap == 250.0


def test_a_bad_value_is_named_with_what_is_allowed(monkeypatch):
    monkeypatch.setenv("INTERESTFLOW_PRICE_CAP", "lots")
    monkeypatch.setenv("INTERESTFLOW_DATA_DOCS_MODE", "sometimes")
    with pytest.raises(SettingsError) as err:
        settings()
    text = str(err.value)
    assert "INTERESTFLOW_PRICE_CAP='lots': Input should be a valid number" in text
    assert "INTERESTFLOW_DATA_DOCS_MODE='sometimes': Input should be 'failures', 'always' or 'never'" in text
    monkeypatch.setenv("INTERESTFLOW_PRICE_CAP", "-1")
    monkeypatch.setenv("INTERESTFLOW_DATA_DOCS_MODE", "ALWAYS")  # case does not matter
    with pytest.raises(SettingsError, match="INTERESTFLOW_PRICE_CAP='-1': Input should be greater than 0"):
        settings()
    monkeypatch.setenv("INTERESTFLOW_PRICE_CAP", "10")
    assert settings().data_docs_mode == "always"
    monkeypatch.setenv("INTERESTFLOW_UI_REFRESH_SECONDS", "0")  # 0 is allowed where it means "always"
    assert settings().ui_refresh_seconds == 0.0
    monkeypatch.setenv("INTERESTFLOW_SHOP_START", "last tuesday")
    with pytest.raises(SettingsError, match="INTERESTFLOW_SHOP_START='last tuesday': Value error, must be a timestamp"):
        settings()


def test_importing_ml_never_fails_on_a_setting_and_the_command_line_names_it():
    env = {"PATH": "/usr/bin:/bin", "INTERESTFLOW_PRICE_CAP": "abc", "PYTHONPATH": str(ROOT)}
    imported = subprocess.run(
        [sys.executable, "-c", "import ml.config, ml.warehouse, ml.ingest.landing, ml.quality.gates"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert imported.returncode == 0, imported.stderr
    shown = subprocess.run([sys.executable, "-m", "ml", "config"], env=env, capture_output=True, text=True, cwd=ROOT)
    assert shown.returncode == 2
    assert shown.stderr.strip().splitlines()[-1].startswith("error: bad setting: INTERESTFLOW_PRICE_CAP='abc'")


def test_effective_settings_mask_passwords_and_say_where_each_comes_from():
    env = {
        "INTERESTFLOW_HOME": "/srv/interestflow",
        "INTERESTFLOW_WAREHOUSE": "postgresql://shop:s3cret@db.internal:5432/warehouse",
        "INTERESTFLOW_CELERY_BROKER": "redis://:brokerpass@redis:6379/0",
        "INTERESTFLOW_AIRFLOW_ADMIN_PASSWORD": "adminpass",
        "INTERESTFLOW_WORKERS": "3",
    }
    rows = {r["variable"]: r for r in effective(env)}
    assert rows["INTERESTFLOW_WAREHOUSE"]["value"] == "postgresql://shop:***@db.internal:5432/warehouse"
    assert rows["INTERESTFLOW_CELERY_BROKER"]["value"] == "redis://:***@redis:6379/0"
    assert rows["INTERESTFLOW_AIRFLOW_ADMIN_PASSWORD"]["value"] == "***"
    assert not any(
        "s3cret" in r["value"] or "adminpass" in r["value"] or "brokerpass" in r["value"] for r in rows.values()
    )
    assert rows["INTERESTFLOW_WORKERS"] == {**rows["INTERESTFLOW_WORKERS"], "value": "3", "source": "env"}
    assert rows["INTERESTFLOW_ARTIFACTS"]["value"] == "/srv/interestflow/artifacts"
    assert rows["INTERESTFLOW_ARTIFACTS"]["source"] == "default"
    assert mask_url("postgresql://postgres@127.0.0.1:5432") == "postgresql://postgres@127.0.0.1:5432"
