"""Model registry (versions, champions, gate decisions) stored in the warehouse."""

from ml.registry.store import (
    ModelVersion,
    Registry,
    load_artifact,
    save_artifact,
)

__all__ = ["ModelVersion", "Registry", "load_artifact", "save_artifact"]
