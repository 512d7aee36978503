"""Failure alerts: an e-mail through Airflow's SMTP notifier when an Interestflow task fails for
good (a blocked batch, a failed data-quality gate, a crash after its retries).

Every DAG gets :func:`notify_failure` as its tasks' ``on_failure_callback`` (``DEFAULT_ARGS``).
The channel is the Airflow Connection ``interestflow_alerts``, an ``smtp`` connection: host,
port, login and password of the mail server, and in its extras ``to`` (comma-separated
addresses), ``from_email`` and, for a server without TLS, ``disable_tls``/``disable_ssl``. Define
it in the UI, as ``AIRFLOW_CONN_INTERESTFLOW_ALERTS`` or in a secrets backend. Without that
connection alerts are off: a failure is logged and nothing is sent.

The message names the DAG, task, run and try, and carries the failure's own text, which for a
gate is its readable summary (failing expectations, columns, counts, examples, Data Docs path).
A retry is not a failure: a task that succeeds on a later try sends nothing.

:func:`notify_deadline` is the callback of ``publish_recommendations``' deadline alert (an
Airflow ``DeadlineAlert``: the run has not finished ``INTERESTFLOW_PUBLISH_DEADLINE_MINUTES``
after it was queued; the executor runs it); it mails through the same connection. A stuck or
slow publish is then known while it is still running, before ``watch_serving`` finds the served
table too old.
"""

from __future__ import annotations

import html
import logging
from typing import Any

log = logging.getLogger(__name__)

ALERT_CONN_ID = "interestflow_alerts"


def alert_connection() -> Any | None:
    """The ``interestflow_alerts`` Connection, or None when it is not defined (alerts off)."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return Connection.get(ALERT_CONN_ID)
    except AirflowNotFoundException:
        return None


def recipients(conn: Any) -> list[str]:
    """The addresses in the connection's ``to`` extra."""
    to = (conn.extra_dejson or {}).get("to") or ""
    items = to if isinstance(to, list) else str(to).split(",")
    return [a.strip() for a in items if str(a).strip()]


def failure_message(context: dict[str, Any]) -> tuple[str, str]:
    """(subject, HTML body) of the alert for a failed task."""
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(ti, "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    run_id = context.get("run_id") or getattr(ti, "run_id", "?")
    try_number = getattr(ti, "try_number", "?")
    error = context.get("exception")
    text = str(error) if error is not None else "(no error text: see the task log)"
    subject = f"[interestflow] {dag_id}.{task_id} failed ({run_id})"
    body = (
        f"<p>Task <b>{html.escape(task_id)}</b> of DAG <b>{html.escape(dag_id)}</b> failed "
        f"(run {html.escape(str(run_id))}, try {html.escape(str(try_number))}).</p>"
        f"<pre>{html.escape(text)}</pre>"
        "<p>Until this is fixed, what the DAG would have published is not published: the last "
        "published tables stay served.</p>"
    )
    return subject, body


def notify_failure(context: dict[str, Any]) -> None:
    """``on_failure_callback``: e-mail the failure through the ``interestflow_alerts`` connection;
    nothing (a log line) when that connection or its recipients are missing."""
    conn = alert_connection()
    if conn is None:
        log.info("alerts are off: no Airflow Connection %r", ALERT_CONN_ID)
        return
    to = recipients(conn)
    if not to:
        log.warning("Airflow Connection %r has no 'to' extra: no alert sent", ALERT_CONN_ID)
        return
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    subject, body = failure_message(context)
    # notify() sends the text as given (no template rendering of the error text)
    notifier = SmtpNotifier(to=to, subject=subject, html_content=body, smtp_conn_id=ALERT_CONN_ID)
    notifier.notify(context)  # type: ignore[arg-type]  # (Airflow's Context is this dict)
    log.info("alert sent to %s: %s", ", ".join(to), subject)


def deadline_message(context: dict[str, Any], minutes: float) -> tuple[str, str]:
    """(subject, HTML body) of the alert for a run that missed its deadline; ``context`` is what
    Airflow passes a deadline callback (``dag_run``: the run as the REST API shows it)."""
    run = context.get("dag_run") or {}
    dag_id, run_id = run.get("dag_id", "?"), run.get("dag_run_id") or run.get("run_id", "?")
    due = (context.get("deadline") or {}).get("deadline_time", "?")
    subject = f"[interestflow] {dag_id} missed its deadline ({run_id})"
    body = (
        f"<p>Run <b>{html.escape(str(run_id))}</b> of DAG <b>{html.escape(str(dag_id))}</b> was queued at "
        f"{html.escape(str(run.get('queued_at', '?')))} and had not finished {minutes:g} minutes later "
        f"(deadline {html.escape(str(due))}; state {html.escape(str(run.get('state', '?')))}).</p>"
        "<p>Until it finishes, the previously published recommendations stay served.</p>"
    )
    return subject, body


def notify_deadline(context: dict[str, Any], minutes: float) -> None:
    """Deadline callback: e-mail that a run missed its deadline through the ``interestflow_alerts``
    connection; nothing (a log line) when that connection or its recipients are missing."""
    conn = alert_connection()
    subject, body = deadline_message(context, minutes)
    if conn is None or not recipients(conn):
        log.info("alerts are off (no Airflow Connection %r with recipients): %s", ALERT_CONN_ID, subject)
        return
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    to = recipients(conn)
    SmtpNotifier(to=to, subject=subject, html_content=body, smtp_conn_id=ALERT_CONN_ID).notify(context)  # type: ignore[arg-type]
    log.info("deadline alert sent to %s: %s", ", ".join(to), subject)
