"""Map data problems to Airflow failures that do not retry."""

from __future__ import annotations

from typing import NoReturn


class DataProblem(RuntimeError):
    """Raised outside Airflow where Airflow's AirflowFailException is unavailable."""


def fail_without_retry(message: str) -> NoReturn:
    """Fail the current task immediately (no retries): re-running cannot fix bad data."""
    try:
        from airflow.exceptions import AirflowFailException
    except ImportError:  # plain Python use of ml/
        raise DataProblem(message) from None
    raise AirflowFailException(message)
