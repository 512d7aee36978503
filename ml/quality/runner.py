"""Run a gate: its YAML suite, as Great Expectations 1.x expectations, on pandas frames.

``run_gate`` builds one GX expectation suite per frame (the static expectations of the suite file
plus volume and drift expectations bounded by the previous passed run's profile), validates each
frame with GX, writes the Data Docs and returns a :class:`GateResult`. It records nothing and
raises nothing on failure: callers record the result (:mod:`ml.quality.store`) and raise
:class:`GateFailure` (see :mod:`ml.quality.gates`).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.quality import docs as data_docs
from ml.quality.profile import drift_expectation, frame_profile, volume_expectation
from ml.quality.suite import FrameSpec, SuiteSpec, build_expectation

log = logging.getLogger(__name__)
N_EXAMPLES = 5
DOCS_SITE = "interestflow"


@dataclass
class GateResult:
    """The outcome of one gate run; ``failures`` are the critical failures (they stop the pipeline)."""

    gate: str
    run_id: str
    passed: bool
    n_expectations: int
    n_failed: int
    failures: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    data_docs_path: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """Readable lines: verdict, then expectation, column, failing count and example values."""
        head = (
            f"gate {self.gate!r} {'passed' if self.passed else 'FAILED'}: "
            f"{self.n_failed} of {self.n_expectations} expectations failed (run {self.run_id})"
        )
        lines = [head]
        for f in self.failures + [{**w, "warning": True} for w in self.warnings]:
            col = f"{f.get('frame')}.{f['column']}" if f.get("column") else str(f.get("frame"))
            if f.get("unexpected"):
                what = f"{f['failing_count']} failing rows"
            else:
                bounds = ", ".join(f"{k} {v}" for k, v in (f.get("bounds") or {}).items() if k != "value_set")
                what = f"observed {f.get('observed')}" + (f" ({bounds})" if bounds else "")
            ex = f", e.g. {f['examples']}" if f.get("examples") else ""
            tag = "warning: " if f.get("warning") else ""
            lines.append(f"  - {tag}{f['expectation']} on {col}: {what}{ex}")
        if self.data_docs_path:
            lines.append(f"  Data Docs: {self.data_docs_path}")
        return "\n".join(lines)


class GateFailure(Exception):
    """A gate failed: the task fails with this summary and nothing downstream runs."""

    def __init__(
        self,
        gate: str,
        failures: list[dict[str, Any]] | None = None,
        data_docs_path: str = "",
        result: GateResult | None = None,
    ):
        self.gate = gate
        self.failures = list(failures or [])
        self.data_docs_path = data_docs_path
        self.result = result
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.result is not None:
            return self.result.summary()
        lines = [f"gate {self.gate!r} failed:"]
        for f in self.failures:
            lines.append(
                f"  - {f['expectation']} on {f.get('column')}: {f.get('failing_count')} failing, e.g. {f.get('examples')}"
            )
        return "\n".join(lines)


def _gx_ready_frame(df: pd.DataFrame, columns: tuple[str, ...] | None) -> pd.DataFrame:
    """Only the columns the suite needs, with a fresh index (examples then name rows 0..n-1)."""
    out = df[list(dict.fromkeys(columns))] if columns else df
    return out.reset_index(drop=True)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, tuple | list):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, (dict, list, str, int, float, bool)) or v is None:
        return v
    return str(v)


def _failure(frame: str, r: Any) -> dict[str, Any]:
    cfg = r.expectation_config
    kwargs = dict(cfg.kwargs)
    res = r.result or {}
    column = (
        kwargs.get("column")
        or kwargs.get("column_list")
        or (f"{kwargs.get('column_A')},{kwargs.get('column_B')}" if "column_A" in kwargs else None)
    )
    unexpected = res.get("unexpected_count")
    # with id columns GX names the failing rows ({user_id: ..., value column: ...}); else the values
    raw = res.get("partial_unexpected_index_list") if res.get("unexpected_index_column_names") else None
    examples = [_jsonable(x) for x in (raw or res.get("partial_unexpected_list") or [])[:N_EXAMPLES]]
    observed = res.get("observed_value")
    if r.exception_info and r.exception_info.get("raised_exception"):
        observed = f"error: {r.exception_info.get('exception_message')}"
    bounds = {k: _jsonable(kwargs[k]) for k in ("min_value", "max_value", "threshold", "value_set") if k in kwargs}
    return {
        "frame": frame,
        "expectation": cfg.type,
        "column": column if isinstance(column, str) or column is None else ",".join(column),
        "failing_count": int(unexpected) if unexpected is not None else 1,
        "unexpected": unexpected is not None,
        "examples": examples,
        "observed": round(observed, 6) if isinstance(observed, float) else _jsonable(observed),
        "bounds": bounds,
        "check": (cfg.meta or {}).get("check", "rule"),
    }


def import_gx() -> Any:
    """Great Expectations, imported on first use (a few seconds) with its chatter turned down."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    for name in ("great_expectations", "great_expectations._docs_decorators"):
        logging.getLogger(name).setLevel(logging.WARNING)
    import great_expectations as gx

    return gx


def _context(docs_dir: Any) -> Any:
    """An in-memory GX context (no temporary folders) whose Data Docs site is ``docs_dir``."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    sites = {}
    if docs_dir is not None:
        sites[DOCS_SITE] = {
            "class_name": "SiteBuilder",
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
        }
    cfg = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites=sites,
        progress_bars=ProgressBarsConfig(globally=False),
        analytics_enabled=False,
    )
    return gx.get_context(mode="ephemeral", project_config=cfg)


def _entries(name: str, spec: FrameSpec, df: pd.DataFrame, ref: dict[str, Any], skipped: list[str]) -> list[Any]:
    """Frame ``name``'s expectation entries: the suite's, plus volume and drift against the
    previous passed run's profile ``ref``; a check that cannot run yet is named in ``skipped``."""
    entries = list(spec.expectations)
    if spec.has_volume:
        vol = volume_expectation(spec, ref)
        if vol is None:
            skipped.append(f"{name}: volume (no previous passed run)")
        else:
            entries.append(vol)
    for check in spec.drift:
        n_values = int(df[check.column].notna().sum()) if check.column in df.columns else 0
        if n_values < spec.drift_min_rows:
            skipped.append(f"{name}.{check.column}: drift ({n_values} values < {spec.drift_min_rows})")
            continue
        dr = drift_expectation(check, ref, df[check.column]) if check.column in df.columns else None
        if dr is None:
            skipped.append(f"{name}.{check.column}: drift (no previous passed run)")
        else:
            entries.append(dr)
    return entries


def _gx_docs(ctx: Any, gate: str, frame_names: list[str], docs_dir: Path, run_name: str) -> dict[str, str]:
    """Build GX's Data Docs site and return each frame's validation page of this run; empty
    (with a warning) when the build fails: the gate's own report page still names every failure."""
    pages: dict[str, str] = {}
    try:
        ctx.build_data_docs(site_names=[DOCS_SITE])
        for name in frame_names:
            found = sorted((docs_dir / "validations" / gate / name / run_name).rglob("*.html"))
            if found:
                pages[f"{gate}.{name}"] = str(found[-1])
    except Exception as exc:
        log.warning("GX Data Docs build failed for gate %s: %s", gate, exc)
    return pages


def _validate(
    gx: Any,
    ctx: Any,
    source: Any,
    suite_name: str,
    name: str,
    spec: FrameSpec,
    df: pd.DataFrame,
    expectations: list[Any],
    run: Any,
) -> list[Any]:
    """GX's results of one frame's expectations (an expectation suite and a validation
    definition on the frame as a whole-dataframe batch, failing rows named by the id columns)."""
    gx_suite = ctx.suites.add(gx.ExpectationSuite(name=suite_name, expectations=expectations))
    batch_def = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe("batch")
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=suite_name, data=batch_def, suite=gx_suite))
    result_format: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": N_EXAMPLES}
    if spec.id_columns:
        result_format["unexpected_index_column_names"] = list(spec.id_columns)
    return list(vd.run(batch_parameters={"dataframe": df}, result_format=result_format, run_id=run).results)


def run_gate(
    gate: str,
    frames: dict[str, pd.DataFrame],
    run_id: str,
    params: dict[str, Any] | None = None,
    reference: dict[str, Any] | None = None,
    suite: SuiteSpec | None = None,
) -> GateResult:
    """Validate ``frames`` (name -> DataFrame) against the gate's suite with Great Expectations.

    ``reference`` is the previous passed run's profile (``{}`` on a gate's first run: volume and
    drift checks are skipped). The returned result's ``details["profile"]`` is this run's
    profile, the reference of the next run once this one is recorded as passed.
    """
    suite = suite or SuiteSpec.load(gate)
    params = dict(params or {})
    reference = reference or {}
    missing = [name for name in suite.frames if name not in frames]
    if missing:
        raise ValueError(f"gate {gate!r}: frames not given: {missing}")

    gx = import_gx()
    from great_expectations.core.run_identifier import RunIdentifier

    docs_dir = data_docs.data_docs_dir()
    mode = data_docs.docs_mode()
    ctx = _context(docs_dir if mode != "never" else None)
    source = ctx.data_sources.add_pandas("frames")
    run = RunIdentifier(run_name=data_docs.safe_name(run_id))

    failures: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    skipped: list[str] = []
    profile: dict[str, Any] = {}
    rows: dict[str, int] = {}
    n_expectations = 0
    for name, spec in suite.frames.items():
        df = _gx_ready_frame(frames[name], (*spec.id_columns, *spec.columns) if spec.columns else None)
        rows[name] = len(df)
        profile[name] = frame_profile(df, spec)
        entries = _entries(name, spec, df, reference.get(name) or {}, skipped)
        expectations = [build_expectation(n, kw, params) for n, kw in entries]
        n_expectations += len(expectations)
        results = _validate(gx, ctx, source, f"{gate}.{name}", name, spec, df, expectations, run)
        for r in results:
            if r.success:
                continue
            f = _failure(name, r)
            severity = ((r.expectation_config.meta or {}).get("severity") or "critical").lower()
            (warnings if severity == "warning" else failures).append(f)

    passed = not failures
    gx_pages: dict[str, str] = {}
    if mode == "always" or (mode == "failures" and not passed):
        gx_pages = _gx_docs(ctx, gate, list(suite.frames), docs_dir, run.run_name)
    page = data_docs.write_run_page(
        gate, run_id, passed, suite.description, failures, warnings, n_expectations, gx_pages, skipped
    )
    return GateResult(
        gate=gate,
        run_id=run_id,
        passed=passed,
        n_expectations=n_expectations,
        n_failed=len(failures),
        failures=failures,
        warnings=warnings,
        data_docs_path=str(page),
        details={
            "rows": rows,
            "profile": profile,
            "skipped": skipped,
            "warnings": warnings,
            "gx_pages": gx_pages,
            "suite_file": str(suite.path) if suite.path else None,
            "params": {k: _jsonable(v) if not isinstance(v, (list, tuple)) else list(v) for k, v in params.items()},
        },
    )
