"""Import-light defaults of the marketing layer (DAG files read these; no numpy here)."""

from __future__ import annotations

from typing import Any

# new-item discovery in the publish step: the last slot of a user's slate goes to a new item
# whose tags match the user's profile with probability ``slot_probability`` (0 turns it off),
# at most ``daily_cap`` expected impressions per item and day; an item is "new" for
# ``max_age_days`` after release until its CTR interval is narrower than ``ci_width``
# (relative to the estimate when ``relative``)
DEFAULT_NEW_ITEM_BUDGET: dict[str, Any] = {
    "slot_probability": 0.3,
    "daily_cap": 200,
    "ci_width": 0.5,
    "relative": True,
    "targeted": True,
    "max_age_days": 30,
}

# marketing copy (ml/marketing/copywriting): phrases no variant may contain (claims the shop
# cannot back), candidates the model writes per variant before the template stands in, and how
# many days ahead of a campaign's start its copy is written
DEFAULT_BANNED_PHRASES: list[str] = ["limited stock", "guaranteed", "best price", "cheapest", "risk-free", "miracle"]
DEFAULT_COPY_ATTEMPTS = 4
DEFAULT_COPY_LEAD_DAYS = 7
