"""Gate suites: the versioned YAML files in ``ml/quality/suites/`` turned into GX expectations.

A suite file names, per frame, Great Expectations expectations by their snake_case name with
their keyword arguments; ``$name`` values are filled from run-time parameters. Volume and drift
checks are written as GX expectations too, with bounds taken from the previous passed run's
profile (see :mod:`ml.quality.profile`). GX is imported only when expectations are built.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SUITES_DIR = Path(__file__).resolve().parent / "suites"
DRIFT_KINDS = ("categorical", "numeric")


@dataclass(frozen=True)
class DriftCheck:
    """One drift check: KL divergence of ``column`` from the reference must stay below ``max_kl``."""

    column: str
    kind: str
    max_kl: float
    bins: int = 10

    def __post_init__(self) -> None:
        if self.kind not in DRIFT_KINDS:
            raise ValueError(f"drift check on {self.column!r}: kind must be one of {DRIFT_KINDS}, not {self.kind!r}")
        if self.max_kl <= 0 or self.bins < 2:
            raise ValueError(f"drift check on {self.column!r}: need max_kl > 0 and bins >= 2")


@dataclass(frozen=True)
class FrameSpec:
    """What a gate checks on one frame (a table, or a frame the caller derives)."""

    name: str
    expectations: tuple[tuple[str, dict[str, Any]], ...]
    columns: tuple[str, ...] | None = None
    id_columns: tuple[str, ...] = ()
    max_drop: float | None = None
    max_growth: float | None = None
    drift: tuple[DriftCheck, ...] = ()
    drift_min_rows: int = 500

    @property
    def has_volume(self) -> bool:
        return self.max_drop is not None or self.max_growth is not None


@dataclass(frozen=True)
class SuiteSpec:
    """A gate's suite as written in ``suites/<gate>.yml``."""

    gate: str
    description: str
    frames: dict[str, FrameSpec] = field(default_factory=dict)
    path: Path | None = None

    @classmethod
    def load(cls, gate: str, suites_dir: Path | None = None) -> SuiteSpec:
        path = (suites_dir or SUITES_DIR) / f"{gate}.yml"
        if not path.exists():
            raise FileNotFoundError(f"no suite file for gate {gate!r}: {path}")
        return cls.from_dict(yaml.safe_load(path.read_text()), path)

    @classmethod
    def from_dict(cls, doc: dict[str, Any], path: Path | None = None) -> SuiteSpec:
        where = str(path or "suite")
        if not isinstance(doc, dict) or "gate" not in doc or "frames" not in doc:
            raise ValueError(f"{where}: a suite needs `gate` and `frames`")
        frames = {}
        for name, spec in (doc.get("frames") or {}).items():
            exps: list[tuple[str, dict[str, Any]]] = []
            for i, entry in enumerate(spec.get("expectations") or [], start=1):
                if not isinstance(entry, dict) or len(entry) != 1:
                    raise ValueError(f"{where}: frame {name!r} expectation #{i} must be one `name: {{kwargs}}` entry")
                ((exp_name, kwargs),) = entry.items()
                exps.append((str(exp_name), dict(kwargs or {})))
            volume = spec.get("volume") or {}
            drift = spec.get("drift") or {}
            frames[name] = FrameSpec(
                name=name,
                expectations=tuple(exps),
                columns=tuple(spec["columns"]) if spec.get("columns") else None,
                id_columns=tuple(spec.get("id_columns") or ()),
                max_drop=volume.get("max_drop"),
                max_growth=volume.get("max_growth"),
                drift=tuple(DriftCheck(**c) for c in drift.get("columns") or []),
                drift_min_rows=int(drift.get("min_rows", 500)),
            )
        return cls(gate=str(doc["gate"]), description=str(doc.get("description", "")), frames=frames, path=path)


def substitute(value: Any, params: dict[str, Any]) -> Any:
    """Replace ``"$name"`` strings (also inside lists and dicts) by ``params[name]``."""
    if isinstance(value, str) and value.startswith("$"):
        key = value[1:]
        if key not in params:
            raise KeyError(f"suite parameter ${key} was not given (known: {sorted(params)})")
        return params[key]
    if isinstance(value, list):
        return [substitute(v, params) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, params) for k, v in value.items()}
    return value


def expectation_class(name: str) -> Any:
    """The GX 1.x expectation class for a snake_case name (``expect_column_values_to_be_unique``)."""
    import great_expectations.expectations as gxe

    wanted = name.replace("_", "").lower()
    for attr in dir(gxe):
        if attr.lower() == wanted:
            return getattr(gxe, attr)
    raise ValueError(f"unknown Great Expectations expectation {name!r}")


def build_expectation(name: str, kwargs: dict[str, Any], params: dict[str, Any]) -> Any:
    """One GX expectation object from its suite entry; ``severity: warning`` goes to ``meta``."""
    args = substitute(dict(kwargs), params)
    severity = str(args.pop("severity", "critical"))
    meta = {**(args.pop("meta", None) or {}), "severity": severity}
    return expectation_class(name)(**args, meta=meta)
