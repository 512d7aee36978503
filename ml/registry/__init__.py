"""Model registry (versions, champions, gate decisions) stored in the warehouse, and the
champion/challenger gate policy."""

from ml.registry.gate import GateDecision, GatePolicy
from ml.registry.store import (
    ModelVersion,
    Registry,
    load_artifact,
    save_artifact,
)

__all__ = ["GateDecision", "GatePolicy", "ModelVersion", "Registry", "load_artifact", "save_artifact"]
