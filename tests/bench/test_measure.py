"""The pipeline bench's memory helpers: a stage's peak RSS must not carry what earlier stages
freed (the direct run keeps every stage in one process)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from ml.bench.measure import release_freed_memory, rss_mb

pytestmark = pytest.mark.unit


def test_freed_arrow_and_heap_memory_goes_back_to_the_os():
    release_freed_memory()
    before, pooled = rss_mb(), pa.default_memory_pool().bytes_allocated()
    # ~250 MB of Arrow strings (as pandas' string columns hold them) and of small heap blocks
    strings = pa.array(np.char.mod("user-%09d", np.arange(6_000_000)).astype(object))
    blocks = [bytes(64) + str(i).encode() for i in range(1_000_000)]
    held = rss_mb()
    assert held - before > 150
    del strings, blocks
    release_freed_memory()
    assert pa.default_memory_pool().bytes_allocated() <= pooled  # the strings were freed
    assert rss_mb() - before < 0.25 * (held - before), (before, held, rss_mb())
