"""The Open Bandit Dataset (ZOZOTOWN): ``python -m ml data fetch obd [--path DIR] [--out DIR]``.

Without ``--path`` the small sample (10k rounds per policy and campaign) is read from the
``obp==0.4.1`` wheel on PyPI (downloaded with ``pip download --no-deps``; obp is never
installed): ``obp/dataset/obd/{random,bts}/{all,men,women}/`` and the BTS production prior
``obp/policy/conf/prior_bts.yaml``. With ``--path`` the full data set (same folder layout) is
used in place; its prior comes from the wheel when the folder has none.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ml.data.wheels import download_wheel, extract_prefix

WHEEL = "obp==0.4.1"
PRIOR_FILE = "prior_bts.yaml"


def _complete(folder: Path) -> bool:
    return all(
        (folder / p / c / f"{c}.csv").exists() and (folder / p / c / "item_context.csv").exists()
        for p in ("random", "bts")
        for c in ("all", "men", "women")
    )


def fetch(path: Path | None, out: Path) -> Path:
    """Return a folder holding ``{random,bts}/{all,men,women}/`` and ``prior_bts.yaml``."""
    out = Path(out)
    if path is not None:
        path = Path(path)
        if not _complete(path):
            raise FileNotFoundError(
                f"{path} is not an Open Bandit Dataset folder: expected {{random,bts}}/{{all,men,women}}/"
                "<campaign>.csv and item_context.csv"
            )
        if not (path / PRIOR_FILE).exists():
            out.mkdir(parents=True, exist_ok=True)
            _prior_from_wheel(out)
            # the full data set stays where it is; the prior sits next to the cached sample
            return _link_prior(path, out / PRIOR_FILE)
        return path
    if _complete(out) and (out / PRIOR_FILE).exists():
        return out
    wheel = download_wheel(WHEEL)
    extract_prefix(wheel, "obp/dataset/obd/", out)
    _prior_from_wheel(out, wheel)
    for junk in out.rglob(".DS_Store"):
        junk.unlink()
    return out


def _prior_from_wheel(out: Path, wheel: Path | None = None) -> Path:
    wheel = wheel or download_wheel(WHEEL)
    tmp = out / "_conf"
    extract_prefix(wheel, "obp/policy/conf/", tmp)
    shutil.copyfile(tmp / PRIOR_FILE, out / PRIOR_FILE)
    shutil.rmtree(tmp)
    return out / PRIOR_FILE


def _link_prior(data: Path, prior: Path) -> Path:
    """A writable view of a read-only full data set: the data folders linked, the prior copied."""
    view = prior.parent / "full"
    view.mkdir(parents=True, exist_ok=True)
    for p in ("random", "bts"):
        link = view / p
        if not link.exists():
            link.symlink_to((data / p).resolve(), target_is_directory=True)
    shutil.copyfile(prior, view / PRIOR_FILE)
    return view


def prior_path(folder: Path) -> Path:
    p = Path(folder) / PRIOR_FILE
    if not p.exists():
        raise FileNotFoundError(f"{p} missing: run `python -m ml data fetch obd`")
    return p


DATASETS = {"obd": fetch}
