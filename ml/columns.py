"""Column names and event vocabularies shared by ingest, features, models and publishing."""

from __future__ import annotations

USER_ID = "user_id"
ITEM_ID = "item_id"
EVENT_ID = "event_id"
EVENT_TIME = "event_time"
EVENT_TYPE = "event_type"
SESSION_ID = "session_id"
SCORE = "score"
RANK = "rank"
REASON = "reason"
WEIGHT = "weight"

EVENT_TYPES = ("view", "search", "add_to_cart", "purchase", "review", "impression", "click")
ITEM_EVENT_TYPES = ("view", "add_to_cart", "purchase", "review", "impression", "click")

# landing contract: table -> {column: kind}; kinds: str, time, float, int, json, bool.
# Columns outside REQUIRED are optional: a file may leave them out or blank. For users'
# ``marketing_opt_out`` (true/false, 1/0, yes/no) "absent or blank" means *not stated*: it is
# stored as null, and staging keeps the user's latest stated value (false when never stated),
# so an export in the older format cannot silently undo an opt-out.
LANDING: dict[str, dict[str, str]] = {
    "items": {
        "item_id": "str",
        "title": "str",
        "description": "str",
        "category_path": "str",
        "brand": "str",
        "price": "float",
        "attributes": "json",
        "created_at": "time",
    },
    "events": {
        "event_id": "str",
        "event_time": "time",
        "user_id": "str",
        "session_id": "str",
        "event_type": "str",
        "item_id": "str",
        "query": "str",
        "price": "float",
        "quantity": "int",
        "rating": "int",
        "review_text": "str",
        "recommendation_id": "str",
        "position": "int",
    },
    "users": {"user_id": "str", "signup_time": "time", "country": "str", "marketing_opt_out": "bool"},
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "items": ("item_id", "title", "category_path", "price"),
    "events": ("event_id", "event_time", "user_id", "event_type"),
    "users": ("user_id",),
}
# accepted spellings of the contract's booleans (case-insensitive, surrounding blanks ignored)
BOOL_TRUE = ("true", "t", "yes", "y", "1")
BOOL_FALSE = ("false", "f", "no", "n", "0")
MARKETING_OPT_OUT = "marketing_opt_out"
KEYS = {"items": "item_id", "events": "event_id", "users": "user_id"}
# one rule for user and item ids, applied at ingest (``bad_id``) and by the UI's lookups
ID_COLUMNS = ("user_id", "item_id")
ID_RULE = "1 to 64 characters: letters, digits and _ . : @ -, starting with a letter or digit"
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}"
# the raw tables' integer columns are 32-bit on both warehouses
INT_MIN, INT_MAX = -(2**31), 2**31 - 1

# implicit-feedback weights per event type (the dbt var `event_weights` mirrors these)
DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "click": 2.0,
    "add_to_cart": 3.0,
    "review": 4.0,
    "purchase": 5.0,
}
