"""What ``make airflow`` (``python -m ml airflow standalone``) starts and the password file it
keeps private, without starting Airflow (tests/integration/test_stopping.py starts it)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from ml.commands.airflow import components, password_file, private_password_file

pytestmark = pytest.mark.unit


def test_no_component_starts_a_log_server():
    """Airflow 3.3's log servers bind every interface: the scheduler and the triggerer, the
    two that would start one, are told not to."""
    argv = dict(components("airflow"))
    assert list(argv) == ["api-server", "scheduler", "dag-processor", "triggerer"]
    assert "--skip-serve-logs" in argv["scheduler"] and "--skip-serve-logs" in argv["triggerer"]


def test_the_password_file_is_airflows(tmp_path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", raising=False)
    assert password_file(tmp_path) == tmp_path / "simple_auth_manager_passwords.json.generated"
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(tmp_path / "pw.json"))
    assert password_file(tmp_path) == tmp_path / "pw.json"


def _airflow_generates_passwords(path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the api-server does at start-up: SimpleAuthManager.init() for user admin."""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(path))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    SimpleAuthManager().init()


def test_airflow_alone_writes_the_password_world_readable(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """The fault: with the usual umask, Airflow creates the file 0644."""
    old = os.umask(0o022)
    try:
        path = tmp_path / "pw.json"
        _airflow_generates_passwords(path, monkeypatch)
    finally:
        os.umask(old)
    assert json.loads(path.read_text())["admin"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_the_admin_password_stays_private(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """Created beforehand with 0600, the file keeps that mode when Airflow fills it in; an
    existing world-readable file (an older ``make airflow``) is made 0600 and keeps its
    passwords."""
    old = os.umask(0o022)
    try:
        new = private_password_file(tmp_path / "home" / "pw.json")
        assert stat.S_IMODE(new.stat().st_mode) == 0o600 and new.read_text() == ""
        _airflow_generates_passwords(new, monkeypatch)
        assert json.loads(new.read_text())["admin"]
        assert stat.S_IMODE(new.stat().st_mode) == 0o600

        older = tmp_path / "older.json"
        older.write_text('{"admin": "kept"}\n')
        older.chmod(0o644)
        private_password_file(older)
        assert stat.S_IMODE(older.stat().st_mode) == 0o600
        assert json.loads(older.read_text()) == {"admin": "kept"}
    finally:
        os.umask(old)
