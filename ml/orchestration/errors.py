"""Map data problems to Airflow outcomes: failures that do not retry, and skips."""

from __future__ import annotations

from typing import NoReturn


class DataProblem(RuntimeError):
    """Raised outside Airflow where Airflow's AirflowFailException is unavailable."""


class NothingToDo(RuntimeError):
    """Raised outside Airflow where Airflow's AirflowSkipException is unavailable."""


def fail_without_retry(message: str) -> NoReturn:
    """Fail the current task immediately (no retries): re-running cannot fix bad data."""
    try:
        from airflow.sdk.exceptions import AirflowFailException
    except ImportError:  # plain Python use of ml/
        raise DataProblem(message) from None
    raise AirflowFailException(message)


def skip_task(message: str) -> NoReturn:
    """Skip the current task: it succeeds without output, so its outlets emit no asset event and
    the DAGs scheduled on them do not run."""
    try:
        from airflow.sdk.exceptions import AirflowSkipException
    except ImportError:
        raise NothingToDo(message) from None
    raise AirflowSkipException(message)
