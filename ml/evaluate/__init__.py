"""Offline evaluation: ranking metrics (one signature, one registry) and data splits."""

from ml.evaluate.metrics import METRICS, EvalContext, evaluate
from ml.evaluate.splits import leave_last_out, random_split, temporal_split

__all__ = ["METRICS", "EvalContext", "evaluate", "leave_last_out", "random_split", "temporal_split"]
