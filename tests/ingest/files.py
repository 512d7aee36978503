"""Landing files for the ingest tests: a frame written in the format its path's suffix names."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def write_landing(df: pd.DataFrame, path: Path) -> Path:
    """``df`` as Parquet, CSV or JSON Lines (any other suffix), by ``path``'s suffix; returns ``path``."""
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    elif path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        path.write_text("".join(json.dumps(r, default=str) + "\n" for r in df.to_dict("records")))
    return path
