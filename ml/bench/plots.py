"""Pictures next to the benchmarks' JSON: each ``python -m ml bench NAME`` draws ``NAME.png`` from
the payload it wrote (matplotlib, no display needed). Two shapes cover them: bars (optionally
with 95 % intervals and a reference line) and grouped bars (several series per label)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    """matplotlib.pyplot on the file-only backend (imported when drawing: a few hundred ms)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bars(
    path: Path,
    title: str,
    values: dict[str, float],
    ylabel: str,
    intervals: dict[str, tuple[float, float]] | None = None,
    reference: tuple[str, float] | None = None,
    horizontal: bool = False,
) -> Path:
    """One bar per label; ``intervals`` draws each label's (low, high) as an error bar and
    ``reference`` a labelled line (e.g. the ground truth)."""
    plt = _pyplot()
    labels = list(values)
    heights = np.array([float(values[k]) for k in labels])
    fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(labels) + 3), 4.5), constrained_layout=True)
    err = None
    if intervals:
        lo = np.array([heights[i] - intervals[k][0] if k in intervals else 0.0 for i, k in enumerate(labels)])
        hi = np.array([intervals[k][1] - heights[i] if k in intervals else 0.0 for i, k in enumerate(labels)])
        err = np.vstack([np.maximum(lo, 0), np.maximum(hi, 0)])
    pos = np.arange(len(labels))
    if horizontal:
        ax.barh(pos, heights, xerr=err, capsize=3, color="#4c78a8")
        ax.set_yticks(pos, labels)
        ax.invert_yaxis()
        ax.set_xlabel(ylabel)
    else:
        ax.bar(pos, heights, yerr=err, capsize=3, color="#4c78a8")
        ax.set_xticks(pos, labels, rotation=30 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center")
        ax.set_ylabel(ylabel)
    if reference is not None:
        name, value = reference
        (ax.axvline if horizontal else ax.axhline)(value, color="#e45756", linestyle="--", label=name)
        ax.legend()
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="x" if horizontal else "y")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def grouped_bars(path: Path, title: str, groups: dict[str, dict[str, float]], ylabel: str) -> Path:
    """Labels on the x axis (``groups``' keys), one coloured bar per series within each."""
    plt = _pyplot()
    labels = list(groups)
    series = list(dict.fromkeys(s for g in groups.values() for s in g))
    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(
        figsize=(max(6.0, 0.9 * len(labels) * max(len(series), 1) / 2 + 3), 4.5), constrained_layout=True
    )
    pos = np.arange(len(labels))
    for i, name in enumerate(series):
        heights = [float(groups[k].get(name, np.nan)) for k in labels]
        ax.bar(pos + (i - (len(series) - 1) / 2) * width, heights, width, label=name)
    ax.set_xticks(pos, labels, rotation=30 if len(labels) > 4 else 0, ha="right" if len(labels) > 4 else "center")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
