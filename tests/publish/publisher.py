"""A publishing process for the fault tests: ``python -m tests.publish.publisher URL NAME RUN_ID N_USERS``.

Builds a deterministic recommendations-shaped frame (``frame``), prints ``loading`` and then
``published <version>`` around :func:`ml.publish.publish_table`, so a test can SIGKILL it
in between.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

K = 10


def frame(n_users: int, run_id: str, k: int = K) -> pd.DataFrame:
    """``n_users * k`` rows shaped like ``serving.recommendations_current``; a pure function of
    its arguments."""
    seed = int.from_bytes(run_id.encode()[:8].ljust(8, b"\0"), "little") % 2**32
    rng = np.random.default_rng(seed)
    users = pd.Series(np.repeat(np.arange(n_users), k)).astype(str).str.zfill(7)
    rank = np.tile(np.arange(1, k + 1), n_users)
    items = pd.Series(rng.integers(0, 50_000, n_users * k)).astype(str).str.zfill(6)
    score = np.sort(rng.random((n_users, k)), axis=1)[:, ::-1].ravel()
    return pd.DataFrame(
        {
            "user_id": "u" + users,
            "rank": rank,
            "item_id": "i" + items,
            "score": score,
            "reason": 'similar to an item you viewed, with "quotes", commas and ünïcode',
            "reason_tag": "item:" + items,
            "model_version": "item_knn-test",
            "policy": "greedy",
            "propensity": 1.0,
            "is_exploration": False,
            "recommendation_id": "r" + users,
            "run_id": run_id,
        }
    )


def main(argv: list[str]) -> int:
    from ml.publish import publish_table
    from ml.warehouse import Warehouse

    url, name, run_id, n_users = argv[0], argv[1], argv[2], int(argv[3])
    df = frame(n_users, run_id)
    print("loading", flush=True)
    res = publish_table(df, name, run_id, Warehouse(url), keep=5)
    print("published", res.version, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
