"""The model registry: every trained version with its params, holdout metrics, training
snapshot, git sha, artifact and timings; champions per family and every gate decision.

Tables live in the warehouse schema ``registry`` so that the DAGs, the CLI and the UI plugin
read one source of truth on either DuckDB or PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ml import config
from ml.warehouse import Warehouse

DDL = {
    "model_versions": """version_id varchar, family varchar, model_name varchar, params varchar,
        metrics varchar, snapshot_id varchar, git_sha varchar, artifact_path varchar,
        artifact_bytes bigint, train_seconds double precision, created_at timestamptz,
        run_id varchar""",
    "champions": """family varchar, version_id varchar, promoted_at timestamptz, reason varchar,
        actor varchar""",
    "gate_decisions": """decided_at timestamptz, family varchar, run_id varchar,
        challenger_version varchar, champion_version varchar, promoted boolean, reason varchar,
        details varchar""",
}


@dataclass
class ModelVersion:
    family: str
    model_name: str
    params: dict[str, Any]
    metrics: dict[str, float]
    snapshot_id: str
    artifact_path: str
    artifact_bytes: int
    train_seconds: float
    run_id: str = ""
    git_sha: str = field(default_factory=lambda: git_sha())
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    version_id: str = ""

    def __post_init__(self) -> None:
        if not self.version_id:
            basis = f"{self.family}|{self.model_name}|{json.dumps(self.params, sort_keys=True)}|{self.snapshot_id}|{self.run_id}"
            self.version_id = f"{self.model_name}-{hashlib.sha1(basis.encode()).hexdigest()[:10]}"


def git_sha() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=config.PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def save_artifact(obj: Any, family: str, version_id: str) -> tuple[str, int]:
    """Pickle ``obj`` under the artifacts folder; returns (path, size in bytes)."""
    d = config.artifacts_dir() / family
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{version_id}.pkl"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    return str(path), path.stat().st_size


def load_artifact(path: str | Path) -> Any:
    with open(path, "rb") as f:
        return pickle.load(f)


class Registry:
    def __init__(self, wh: Warehouse | None = None):
        self.wh = wh or Warehouse.from_env()

    def ensure(self, con: Any) -> None:
        self.wh.ensure_schemas(con)
        for t, ddl in DDL.items():
            self.wh.execute(con, f"create table if not exists registry.{t} ({ddl})")

    def register(self, mv: ModelVersion) -> ModelVersion:
        """Record a version (re-registering the same version id replaces its row)."""
        with self.wh.connect() as con:
            self.ensure(con)
            self.wh.begin(con)
            self.wh.execute(con, "delete from registry.model_versions where version_id = ?", [mv.version_id])
            self.wh.execute(
                con,
                "insert into registry.model_versions values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    mv.version_id,
                    mv.family,
                    mv.model_name,
                    json.dumps(mv.params, sort_keys=True, default=str),
                    json.dumps(mv.metrics, sort_keys=True),
                    mv.snapshot_id,
                    mv.git_sha,
                    mv.artifact_path,
                    mv.artifact_bytes,
                    mv.train_seconds,
                    mv.created_at,
                    mv.run_id,
                ],
            )
            con.commit()
        return mv

    def versions(self, family: str | None = None) -> pd.DataFrame:
        with self.wh.connect() as con:
            self.ensure(con)
            q = "select * from registry.model_versions"
            params: list[Any] = []
            if family:
                q += " where family = ?"
                params.append(family)
            df = self.wh.query(q + " order by created_at, version_id", params, con)
            champs = self._champions(con)
        df["is_champion"] = df["version_id"].isin(champs["version_id"]) if len(champs) else False
        return df

    def get(self, version_id: str) -> dict[str, Any]:
        with self.wh.connect() as con:
            self.ensure(con)
            df = self.wh.query("select * from registry.model_versions where version_id = ?", [version_id], con)
        if df.empty:
            raise KeyError(f"no such model version: {version_id}")
        row = df.iloc[0].to_dict()
        row["params"] = json.loads(row["params"])
        row["metrics"] = json.loads(row["metrics"])
        return row

    def _champions(self, con: Any) -> pd.DataFrame:
        df = self.wh.query("select * from registry.champions order by promoted_at", None, con)
        return df.groupby("family").tail(1) if len(df) else df

    def champion(self, family: str) -> dict[str, Any] | None:
        with self.wh.connect() as con:
            self.ensure(con)
            ch = self._champions(con)
        ch = ch[ch["family"] == family] if len(ch) else ch
        if ch.empty:
            return None
        return self.get(str(ch.iloc[-1]["version_id"]))

    def set_champion(self, family: str, version_id: str, reason: str, actor: str = "gate") -> None:
        self.get(version_id)  # must exist
        with self.wh.connect() as con:
            self.ensure(con)
            self.wh.execute(
                con,
                "insert into registry.champions values (?, ?, ?, ?, ?)",
                [family, version_id, datetime.now(UTC), reason, actor],
            )
            con.commit()

    def record_decision(
        self,
        family: str,
        run_id: str,
        challenger: str | None,
        champion: str | None,
        promoted: bool,
        reason: str,
        details: dict[str, Any],
    ) -> None:
        with self.wh.connect() as con:
            self.ensure(con)
            self.wh.execute(
                con,
                "insert into registry.gate_decisions values (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    datetime.now(UTC),
                    family,
                    run_id,
                    challenger,
                    champion,
                    promoted,
                    reason,
                    json.dumps(details, default=str),
                ],
            )
            con.commit()

    def decisions(self, family: str | None = None) -> pd.DataFrame:
        with self.wh.connect() as con:
            self.ensure(con)
            q = "select * from registry.gate_decisions"
            params: list[Any] = []
            if family:
                q += " where family = ?"
                params.append(family)
            return self.wh.query(q + " order by decided_at", params, con)

    def rollback(self, family: str, reason: str = "manual rollback") -> str:
        """Make the previous champion of ``family`` champion again; returns its version id."""
        with self.wh.connect() as con:
            self.ensure(con)
            hist = self.wh.query(
                "select version_id from registry.champions where family = ? order by promoted_at",
                [family],
                con,
            )["version_id"].tolist()
        current = hist[-1] if hist else None
        previous = [v for v in reversed(hist) if v != current]
        if not previous:
            raise ValueError(f"family {family!r} has no earlier champion to roll back to")
        self.set_champion(family, previous[0], reason, actor="rollback")
        return previous[0]


def as_dict(mv: ModelVersion) -> dict[str, Any]:
    d = asdict(mv)
    d["created_at"] = mv.created_at.isoformat()
    return d
