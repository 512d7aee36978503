"""The age of the served table (``ml.publish.freshness``) on a real DuckDB warehouse."""

from __future__ import annotations

import pandas as pd
import pytest

from ml.publish import publish_table
from ml.publish.freshness import StaleServingError, check_serving_age, max_age_hours, serving_age
from ml.warehouse import Warehouse

pytestmark = pytest.mark.unit


@pytest.fixture()
def wh(tmp_path) -> Warehouse:
    return Warehouse(f"duckdb:///{tmp_path / 'warehouse.duckdb'}")


def _publish(wh: Warehouse, run_id: str) -> str:
    recs = pd.DataFrame({"user_id": ["U1", "U2"], "rank": [1, 1], "item_id": ["I1", "I2"], "score": [1.0, 0.5]})
    return publish_table(recs, "recommendations", run_id, wh).version


def test_nothing_published_is_an_error_that_says_so(wh):
    assert serving_age(wh=wh).version is None  # no warehouse file yet: nothing created
    with pytest.raises(StaleServingError, match="no version has been published yet"):
        check_serving_age(36, wh=wh)


def test_age_is_measured_from_the_current_versions_publish_time(wh):
    first = _publish(wh, "run-1")
    published = serving_age(wh=wh).published_at
    later = published + pd.Timedelta(hours=40)
    age = serving_age(wh=wh, now=later)
    assert age.version == first and age.age_hours == pytest.approx(40.0)
    with pytest.raises(StaleServingError, match=rf"40\.0 h old, older than the allowed 36 h: version {first}"):
        check_serving_age(36, wh=wh, now=later)
    assert check_serving_age(48, wh=wh, now=later)["version"] == first

    second = _publish(wh, "run-2")  # a new publish makes the table fresh again
    fresh = check_serving_age(36, wh=wh, now=serving_age(wh=wh).published_at + pd.Timedelta(hours=1))
    assert fresh["version"] == second and fresh["age_hours"] == pytest.approx(1.0)


def test_the_allowed_age_comes_from_the_setting_when_not_given(monkeypatch):
    monkeypatch.delenv("INTERESTFLOW_SERVING_MAX_AGE_HOURS", raising=False)
    assert max_age_hours() == 36.0
    monkeypatch.setenv("INTERESTFLOW_SERVING_MAX_AGE_HOURS", "12.5")
    assert max_age_hours() == 12.5 and max_age_hours(2) == 2.0
    monkeypatch.setenv("INTERESTFLOW_SERVING_MAX_AGE_HOURS", "a day")
    with pytest.raises(ValueError, match="INTERESTFLOW_SERVING_MAX_AGE_HOURS='a day': Input should be a valid number"):
        max_age_hours()
    with pytest.raises(ValueError, match="> 0 hours"):
        max_age_hours(0)
