"""Users split into shards by a stable hash, and the parts the shards of a publish run write.

A shard of a publish run is a plain single-threaded job over its users; the orchestrator runs
the shards as mapped tasks, side by side on as many workers as there are. Each shard writes its
rows as Parquet parts under the state folder (``publish/<run>/shard-<i>-of-<n>/``); the switch
task reads every part and publishes them as one version in one transaction. A retried shard
replaces its part whole (written beside it, then renamed), so a part is never half there and
never doubled. Parts of runs that never reached their switch (a failed or abandoned run) are
swept by the next plan once they are older than :data:`STALE_PARTS_HOURS`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# a publish run takes minutes; parts this old belong to a run that failed or was abandoned
STALE_PARTS_HOURS = 48.0


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based): the users whose :func:`shard_of` is ``index``."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"bad shard {self.index} of {self.count}: need 0 <= index < count, count >= 1")

    @property
    def whole(self) -> bool:
        """True when this shard holds every user."""
        return self.count == 1

    @property
    def name(self) -> str:
        return f"shard-{self.index:03d}-of-{self.count:03d}"

    def members(self, user_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Boolean mask: which of ``user_ids`` belong to this shard."""
        if self.whole:
            return np.ones(len(user_ids), dtype=bool)
        return shard_of(user_ids, self.count) == self.index


def shard_of(user_ids: Sequence[str] | np.ndarray, count: int) -> np.ndarray:
    """Each user's shard: CRC-32 of the id's UTF-8 bytes modulo ``count``; the same in every
    process, on every machine and in every run."""
    return np.fromiter((zlib.crc32(str(u).encode()) % count for u in user_ids), dtype=np.int64, count=len(user_ids))


def run_folder(root: Path, run_id: str) -> Path:
    """``root/publish/<run>``: the run id made safe for a folder name, plus a short digest of it
    so that two run ids never share a folder."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)[:80]
    return root / "publish" / f"{safe}-{hashlib.sha1(run_id.encode()).hexdigest()[:8]}"


def write_part(folder: Path, shard: Shard, frames: dict[str, pd.DataFrame], meta: dict[str, Any]) -> Path:
    """Write shard ``shard``'s ``frames`` (one Parquet file each) and ``meta`` (JSON) as its part
    of ``folder``, replacing an earlier part of the same shard whole. Returns the part's folder."""
    final = folder / shard.name
    tmp = folder / f".{shard.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, df in frames.items():
        df.to_parquet(tmp / f"{name}.parquet", index=False)
    (tmp / "meta.json").write_text(json.dumps(meta, default=str, sort_keys=True))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def read_parts(folder: Path, count: int, names: Sequence[str]) -> tuple[dict[str, pd.DataFrame], list[dict[str, Any]]]:
    """Every shard's part of ``folder``: each frame name's parts concatenated in shard order, and
    the shards' metas. An error naming the shard when a part is missing."""
    frames: dict[str, list[pd.DataFrame]] = {n: [] for n in names}
    metas: list[dict[str, Any]] = []
    for index in range(count):
        part = folder / Shard(index, count).name
        if not (part / "meta.json").is_file():
            raise FileNotFoundError(f"{part}: shard {index} of {count} has written no part (run its task first)")
        metas.append(json.loads((part / "meta.json").read_text()))
        for n in names:
            frames[n].append(pd.read_parquet(part / f"{n}.parquet"))
    return {n: pd.concat(parts, ignore_index=True) for n, parts in frames.items()}, metas


def clear_parts(folder: Path) -> None:
    """Remove a run's parts (after its version is published)."""
    shutil.rmtree(folder, ignore_errors=True)


def sweep_stale_parts(root: Path, older_than_hours: float = STALE_PARTS_HOURS, now: float | None = None) -> list[Path]:
    """Remove the run folders under ``root/publish`` last written more than ``older_than_hours``
    ago (the parts of runs that never switched); returns what was removed."""
    publish = root / "publish"
    if not publish.is_dir():
        return []
    limit = (time.time() if now is None else now) - older_than_hours * 3600.0
    removed = []
    for folder in sorted(publish.iterdir()):
        if not folder.is_dir():
            continue
        newest = max((p.stat().st_mtime for p in folder.rglob("*")), default=folder.stat().st_mtime)
        if max(newest, folder.stat().st_mtime) < limit:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed
