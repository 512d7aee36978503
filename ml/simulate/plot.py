"""The simulator's curves as one PNG (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def plot_curves(daily: pd.DataFrame, path: Path) -> Path:
    """``daily``: one row per (policy, day) with clicks, impressions, expected_clicks,
    oracle_expected_clicks and interests_discovered. Writes a 2 x 2 panel PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8), constrained_layout=True)
    for name, g in daily.groupby("policy", sort=False):
        g = g.sort_values("day")
        day = g["day"] + 1
        style = {"lw": 2.2} if name == "greedy" else {"lw": 1.4}
        axes[0, 0].plot(day, g["clicks"].cumsum(), label=name, **style)
        axes[0, 1].plot(day, (g["oracle_expected_clicks"] - g["expected_clicks"]).cumsum(), label=name, **style)
        axes[1, 0].plot(day, g["interests_discovered"], label=name, **style)
        axes[1, 1].plot(day, g["clicks"] / g["impressions"].clip(lower=1), label=name, **style)
    titles = [
        ("cumulative clicks", "clicks"),
        ("cumulative regret vs oracle", "expected clicks lost"),
        ("true interests discovered", "share of each user's interests clicked"),
        ("daily click-through rate", "clicks / impressions"),
    ]
    for ax, (title, ylabel) in zip(axes.ravel(), titles, strict=True):
        ax.set_title(title)
        ax.set_xlabel("day")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
