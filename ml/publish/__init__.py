"""Atomic, versioned publishing of serving tables."""

from ml.publish.tables import PublishResult, list_versions, prune, publish_table, rollback

__all__ = ["PublishResult", "list_versions", "prune", "publish_table", "rollback"]
