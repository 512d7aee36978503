"""Errors the UI endpoints turn into HTTP answers (400, 404, 503) instead of stack traces."""

from __future__ import annotations


class BadInput(ValueError):
    """A request parameter broke a rule (the message names the parameter and the rule)."""


class NoSuchUser(LookupError):
    """The user id is well formed but appears in none of the user tables."""

    def __init__(self, user_id: str):
        super().__init__(f"no such user: {user_id}")
        self.user_id = user_id


class WarehouseUnavailable(RuntimeError):
    """The warehouse cannot be read right now (no file yet, or locked with no snapshot to fall back to)."""
