"""Fixtures of the tagging tests: a tiny labelled corpus built in code, and the tiny shop
ingested and built by dbt into its own DuckDB file once per session (copied per test)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ml.tagging.vocabulary import Vocabulary
from tests.tagging.corpus import make_corpus


@pytest.fixture(scope="session")
def vocabulary() -> Vocabulary:
    return Vocabulary.from_taxonomy()


@pytest.fixture(scope="session")
def corpus() -> tuple[list[str], list[list[str]]]:
    return make_corpus(60)


@pytest.fixture(scope="session")
def built_warehouse(session_dir: Path, tiny_shop: Path) -> Path:
    """The tiny shop ingested and built by dbt (real ingest, real dbt build), once."""
    from ml.config import IngestSettings
    from ml.features.dbt import build
    from ml.ingest.landing import ingest_paths
    from ml.warehouse import Warehouse

    path = session_dir / "tagging" / "built.duckdb"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        wh = Warehouse(f"duckdb:///{path}")
        ingest_paths([tiny_shop], wh, IngestSettings())
        build(wh)
    return path


@pytest.fixture()
def shop_warehouse(built_warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A private copy of the built tiny-shop warehouse for one test (env points at it)."""
    from ml.warehouse import Warehouse

    path = tmp_path / "wh.duckdb"
    shutil.copy(built_warehouse, path)
    url = f"duckdb:///{path}"
    monkeypatch.setenv("INTERESTFLOW_WAREHOUSE", url)
    monkeypatch.setenv("INTERESTFLOW_ARTIFACTS", str(tmp_path / "artifacts"))
    return Warehouse(url)
