from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture()
def data_docs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Data Docs of this test go to their own folder."""
    out = tmp_path / "data_docs"
    monkeypatch.setenv("INTERESTFLOW_DATA_DOCS", str(out))
    return out
