"""Context from the event stream: sessions, recency, time of day/week and category transitions.

``events`` frames here have integer columns ``row`` (user index), ``col`` (item index) and a
float column ``ts`` (seconds since the epoch), one row per interaction, any order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

SECONDS_PER_DAY = 86400.0
# 7 days x 4 day parts (night 0-6h, morning 6-12h, afternoon 12-18h, evening 18-24h)
N_TIME_SLOTS = 28


def events_frame(rows: np.ndarray, cols: np.ndarray, ts: np.ndarray) -> pd.DataFrame:
    """The canonical events frame (row, col, ts) sorted by user then time."""
    rows, cols, ts = np.asarray(rows, np.int64), np.asarray(cols, np.int64), np.asarray(ts, np.float64)
    return pd.DataFrame({"row": rows, "col": cols, "ts": ts}).take(_order(rows, ts, cols)).reset_index(drop=True)


def _order(rows: np.ndarray, ts: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Stable order by (row, ts, col), NaN times last within a row. When the three fit in 63
    bits (row, rank of the time, col) it is one stable sort of one integer key, several times
    faster than a three-key sort of ten million events; otherwise ``np.lexsort``."""
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    _, t_rank = np.unique(ts, return_inverse=True)  # NaN (all equal) ranks last
    bits = [int(max(int(a.max()), 1)).bit_length() for a in (rows, t_rank, cols)]
    if rows.min() < 0 or cols.min() < 0 or sum(bits) > 63:
        return np.lexsort((cols, ts, rows))
    key = (rows << (bits[1] + bits[2])) | (t_rank.astype(np.int64) << bits[2]) | cols
    return np.argsort(key, kind="stable")


def session_matrix(
    events: pd.DataFrame, n_items: int, window: int = 10, stride: int | None = None, gap_seconds: float = 60.0
) -> sp.csr_matrix:
    """Binary (n_sessions, n_items) matrix of short-range co-occurrence units.

    Two kinds of rows, stacked: (a) each user's time-ordered history cut into windows of
    ``window`` consecutive interactions, overlapping by ``window - stride`` (default half);
    (b) bursts — runs of a user's interactions less than ``gap_seconds`` apart (skipped when
    ``gap_seconds <= 0``). Their Gram matrix counts how often two items are used close together.
    """
    if events is None or len(events) == 0:
        return sp.csr_matrix((0, n_items), dtype=np.float32)
    ev = events.sort_values(["row", "ts", "col"], kind="stable")
    u = ev["row"].to_numpy(np.int64)
    it = ev["col"].to_numpy(np.int64)
    ts = ev["ts"].to_numpy(np.float64)
    starts = np.r_[True, u[1:] != u[:-1]]
    pos = np.arange(len(u)) - np.maximum.accumulate(np.where(starts, np.arange(len(u)), 0))
    keys, cols = [], []
    if window > 1:
        step = max(1, stride or window // 2)
        for j, off in enumerate(range(0, window, step)):
            keys.append((u * 64 + j) * (1 << 24) + (pos + off) // window)
            cols.append(it)
    if gap_seconds > 0:
        new_burst = starts | np.r_[True, np.diff(ts) > gap_seconds]
        keys.append((1 << 62) + np.cumsum(new_burst))
        cols.append(it)
    if not keys:
        return sp.csr_matrix((0, n_items), dtype=np.float32)
    _, r = np.unique(np.concatenate(keys), return_inverse=True)
    S = sp.csr_matrix(
        (np.ones(len(r), np.float32), (r, np.concatenate(cols))), shape=(int(r.max()) + 1, n_items), dtype=np.float32
    )
    S.sum_duplicates()
    S.data[:] = 1.0
    return S


def time_slot(ts: np.ndarray) -> np.ndarray:
    """Day-of-week x day-part slot in [0, 28) of UTC timestamps (seconds)."""
    t = pd.to_datetime(np.asarray(ts, np.float64), unit="s", utc=True)
    return (np.asarray(t.dayofweek) * 4 + np.asarray(t.hour) // 6).astype(np.int64)


def recency_matrix(events: pd.DataFrame, n_rows: int, n_items: int, last_n: int = 5) -> sp.csr_matrix:
    """(n_rows, n_items) weights of each user's ``last_n`` interactions: 1 for the newest,
    1/2 for the one before, ... (a user's session recency)."""
    if events is None or len(events) == 0:
        return sp.csr_matrix((n_rows, n_items), dtype=np.float32)
    ev = events.sort_values(["row", "ts", "col"], ascending=[True, False, True], kind="stable")
    back = ev.groupby("row").cumcount().to_numpy()
    keep = back < last_n
    R = sp.csr_matrix(
        (1.0 / (1.0 + back[keep]), (ev["row"].to_numpy()[keep], ev["col"].to_numpy()[keep])),
        shape=(n_rows, n_items),
        dtype=np.float32,
    )
    R.sum_duplicates()
    return R


def category_transitions(
    events: pd.DataFrame, item_categories: np.ndarray, n_categories: int, smoothing: float = 1.0
) -> np.ndarray:
    """Markov next-category model: (n_cat, n_cat) row-stochastic P(next category | category)
    from consecutive interactions of each user (self-transitions included), Laplace-smoothed."""
    counts = np.zeros((n_categories, n_categories), dtype=np.float64)
    if events is not None and len(events) > 1:
        ev = events.sort_values(["row", "ts", "col"], kind="stable")
        u = ev["row"].to_numpy()
        c = item_categories[ev["col"].to_numpy()]
        same = (u[1:] == u[:-1]) & (c[1:] >= 0) & (c[:-1] >= 0)
        np.add.at(counts, (c[:-1][same], c[1:][same]), 1.0)
    counts += smoothing
    return counts / counts.sum(axis=1, keepdims=True)
