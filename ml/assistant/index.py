"""Item embeddings for the assistant, kept current in the warehouse (``ml.item_embeddings``).

``refresh_item_embeddings`` (``build_features``' ``embed_items`` task, or ``python -m ml assistant
index``) embeds, with MiniLM, each item whose retrieval text (``ml.assistant.service.catalogue``)
is new or changed since it was last embedded: rows are keyed by item, and a row's ``text_sha``
(the model and the text, hashed) says whether it is still current. A run with nothing new does
not load the model. Embeddings are stored as JSON arrays, readable on DuckDB and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from ml.tagging.defaults import DEFAULT_ENCODER
from ml.warehouse import Warehouse

log = logging.getLogger(__name__)

ITEM_EMBEDDINGS = "ml.item_embeddings"
DDL = "item_id varchar, text_sha varchar, model varchar, embedding varchar, embedded_at timestamptz"


def text_sha(model: str, text: str) -> str:
    return hashlib.sha256(f"{model}\n{text}".encode()).hexdigest()[:16]


def refresh_item_embeddings(
    run_id: str = "manual", model: str = DEFAULT_ENCODER, warehouse: str | None = None
) -> dict[str, Any]:
    """Embed the items whose text is new or changed; returns how many were embedded."""
    from ml.assistant.retrieval import encode
    from ml.assistant.service import CATALOGUE_SQL, catalogue
    from ml.tagging import encoder as enc

    wh = Warehouse.from_env(warehouse)
    with wh.connect() as con:
        wh.ensure_schemas(con)
        wh.execute(con, f"create table if not exists {ITEM_EMBEDDINGS} ({DDL})")
        con.commit()
        raw = wh.query(CATALOGUE_SQL, None, con)
        have = wh.query(f"select item_id, text_sha from {ITEM_EMBEDDINGS}", None, con)
    items = catalogue(raw)
    sha = pd.Series([text_sha(model, t) for t in items["text"]], index=items["item_id"])
    current = set(zip(have["item_id"].astype(str), have["text_sha"].astype(str), strict=True))
    stale = [(i, s) not in current for i, s in zip(items["item_id"], sha.to_numpy(), strict=True)]
    todo = items[np.array(stale, dtype=bool)]  # (an empty list would select no columns)
    if todo.empty:
        return {"embedded": 0, "items": len(items), "model": model, "run_id": run_id}
    vectors = encode(enc.load(model), todo["text"].tolist())
    rows = pd.DataFrame(
        {
            "item_id": todo["item_id"].to_numpy(),
            "text_sha": sha.loc[todo["item_id"]].to_numpy(),
            "model": model,
            "embedding": [json.dumps(np.round(v, 6).tolist()) for v in vectors],
            "embedded_at": datetime.now(UTC),
        }
    )
    with wh.connect() as con:
        wh.begin(con)
        for start in range(0, len(rows), 1000):
            ids = rows["item_id"].iloc[start : start + 1000].tolist()
            marks = ", ".join("?" for _ in ids)
            wh.execute(con, f"delete from {ITEM_EMBEDDINGS} where item_id in ({marks})", ids)
        wh.append_df(con, ITEM_EMBEDDINGS, rows)
        wh.commit(con)
    log.info("embed_items: %d of %d items embedded with %s", len(rows), len(items), model)
    return {"embedded": len(rows), "items": len(items), "model": model, "run_id": run_id}


def embeddings_for(items: pd.DataFrame, stored: pd.DataFrame, model: str = DEFAULT_ENCODER) -> np.ndarray:
    """The (n_items, d) embeddings of ``items`` (``catalogue`` rows) from ``stored`` rows of
    ``ml.item_embeddings``; raises naming how many are missing or stale and how to refresh them."""
    have = stored.set_index(stored["item_id"].astype(str))
    want = [text_sha(model, t) for t in items["text"]]
    ok = [i in have.index and have.at[i, "text_sha"] == s for i, s in zip(items["item_id"], want, strict=True)]
    missing = len(ok) - sum(ok)
    if missing:
        raise LookupError(
            f"{missing} of {len(ok)} items have no current embedding in {ITEM_EMBEDDINGS}: "
            "run build_features or python -m ml assistant index"
        )
    return np.array([json.loads(e) for e in have.loc[items["item_id"], "embedding"]], dtype=np.float32)
