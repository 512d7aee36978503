"""Reference oracles of the publish path: the rules written one user at a time, plainly.

``ml.explore`` computes them for all users at once on the contexts' columns; the tests in
``test_columnar_contract.py`` check that the whole-array code gives the same rows as these.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ml.explore import columns as C
from ml.explore.context import SlateContext, arm_features_json
from ml.explore.policies import SlatePolicy
from ml.explore.slate import recommendation_id, sample_slates, tag_label, user_seed

SLATE_COLUMNS = [
    "user_id",
    "rank",
    "item_id",
    "score",
    "reason",
    "reason_tag",
    C.POLICY,
    C.PROPENSITY,
    C.PROPENSITY_SE,
    C.IS_EXPLORATION,
    C.RECOMMENDATION_ID,
    C.ARM_FEATURES,
]


def flat_items(ctx: SlateContext) -> list[object]:
    """The context's item ids in code order: tag by tag, each tag's items best first."""
    return [x for its in ctx.items for x in its]


def per_context_slates(
    policy: SlatePolicy,
    contexts: Sequence[SlateContext],
    k: int,
    day: str,
    run_id: str,
    n_draws: int = 256,
    labels: dict[str, str] | None = None,
) -> pd.DataFrame:
    """``build_slates``, one context at a time: the user's slates sampled with the (user, day)
    seed, row 0 shown; the reason is the exploration wording, else the champion's reason for the
    item, else the liked tag."""
    out = []
    for ctx in contexts:
        draws = sample_slates(policy, ctx, k, np.random.default_rng(user_seed(ctx.user_id, day)), n_draws)
        flat = flat_items(ctx)
        prop, se = draws.propensity()
        for j in range(k):
            code = int(draws.items[0, j])
            if code < 0:
                continue
            t = int(draws.tags[0, j])
            tag, item, explore = ctx.tags[t], str(flat[code]), bool(draws.explore[0, j])
            if explore:
                reason = f"something new for you: {tag_label(tag, labels)}"
            else:
                reason = ctx.reasons.get(item) or f"because you like {tag_label(tag, labels)}"
            out.append(
                (
                    ctx.user_id,
                    j + 1,
                    item,
                    float(draws.scores[0, j]),
                    reason,
                    tag,
                    policy.name,
                    float(prop[j]),
                    float(se[j]),
                    explore,
                    recommendation_id(run_id, ctx.user_id),
                    arm_features_json(ctx.features[t]),
                )
            )
    return pd.DataFrame(out, columns=SLATE_COLUMNS)
