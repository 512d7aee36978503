"""Where gate reports go: GX Data Docs plus one small static page per gate run.

``data_docs_dir()`` is ``$INTERESTFLOW_DATA_DOCS`` or ``$INTERESTFLOW_HOME/data_docs``. GX's
own site (``index.html``, ``validations/<gate>/<frame>/<run>/…html``) is built there for every
failed run (and every run when ``INTERESTFLOW_DATA_DOCS_MODE=always``); the run page
``runs/<gate>/<run>.html`` is always written: verdict, failures with example values, and links
to GX's validation pages.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path
from typing import Any

from ml.settings import settings


def data_docs_dir() -> Path:
    return settings().data_docs_dir


def docs_mode() -> str:
    """``failures`` (default: GX site on failed runs only), ``always`` or ``never``."""
    return settings().data_docs_mode


def safe_name(text: str) -> str:
    """A file-name-safe form of a run id (Airflow ids contain ':' and '+')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "run"


def write_run_page(
    gate: str,
    run_id: str,
    passed: bool,
    description: str,
    failures: list[dict[str, Any]],
    warnings: list[dict[str, Any]],
    n_expectations: int,
    gx_pages: dict[str, str],
    skipped: list[str],
) -> Path:
    """Write ``runs/<gate>/<run>.html`` and return its path."""
    out = data_docs_dir() / "runs" / gate / f"{safe_name(run_id)}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    verdict = "PASSED" if passed else "FAILED"
    colour = "#1a7f37" if passed else "#cf222e"

    def rows(items: list[dict[str, Any]]) -> str:
        if not items:
            return "<p>none</p>"
        body = "".join(
            "<tr>"
            f"<td>{html.escape(str(f.get('frame', '')))}</td>"
            f"<td><code>{html.escape(str(f['expectation']))}</code></td>"
            f"<td>{html.escape(str(f.get('column') or ''))}</td>"
            f"<td>{html.escape(str(f.get('failing_count')))}</td>"
            f"<td>{html.escape(str(f.get('observed', '')))}</td>"
            f"<td>{html.escape(', '.join(f'{k}={v}' for k, v in (f.get('bounds') or {}).items() if k != 'value_set'))}</td>"
            f"<td>{html.escape(', '.join(map(str, f.get('examples') or [])))}</td>"
            "</tr>"
            for f in items
        )
        return (
            "<table><tr><th>frame</th><th>expectation</th><th>column</th><th>failing</th>"
            f"<th>observed</th><th>bounds</th><th>examples</th></tr>{body}</table>"
        )

    links = "".join(
        f'<li><a href="{html.escape(os.path.relpath(p, out.parent))}">{html.escape(name)}</a></li>'
        for name, p in sorted(gx_pages.items())
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(gate)} {verdict}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}</style></head>
<body><h1>Gate <code>{html.escape(gate)}</code>: <span style="color:{colour}">{verdict}</span></h1>
<p>{html.escape(description)}</p>
<p>run <code>{html.escape(run_id)}</code> · {n_expectations} expectations · {len(failures)} failed</p>
<h2>Failures</h2>{rows(failures)}
<h2>Warnings</h2>{rows(warnings)}
<h2>Skipped checks</h2><ul>{"".join(f"<li>{html.escape(s)}</li>" for s in skipped) or "<li>none</li>"}</ul>
<h2>Great Expectations validation pages</h2><ul>{links or "<li>not built for this run</li>"}</ul>
</body></html>
"""
    out.write_text(page, encoding="utf-8")
    return out
