"""A ``publish_recommendations`` process that SIGKILLs itself at one boundary of the publish, for
the fault tests: ``python -m tests.publish.slate_publisher RUN_ID BOUNDARY`` (warehouse from
``INTERESTFLOW_WAREHOUSE``).

Boundaries, in the order a publish crosses them:

* ``before_switch``: the new version's table is loaded, the view not yet pointed at it;
* ``mid_log``: the view is switched and the slates are logged, the contexts not yet;
* ``after_log``: switch and log written, the transaction not yet committed;
* ``after_commit``: committed, before old versions are pruned and before the task returns;
* ``none``: no kill (a clean publish, e.g. the rerun after a kill).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

BOUNDARIES = ("before_switch", "mid_log", "after_log", "after_commit", "none")


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _killing_before(fn: Callable[..., Any]) -> Callable[..., Any]:
    def inner(*args: Any, **kwargs: Any) -> Any:
        die()
        return fn(*args, **kwargs)

    return inner


def _arm(boundary: str) -> None:
    import ml.explore.store as store
    import ml.publish.tables as tables

    if boundary == "before_switch":
        tables._point_view = _killing_before(tables._point_view)
    elif boundary == "mid_log":
        from ml.warehouse import Warehouse

        append = Warehouse.append_df

        def append_then_die(wh: Any, con: Any, table: str, df: Any) -> int:
            n = append(wh, con, table, df)
            if table.endswith("logged_slates"):
                die()
            return n

        Warehouse.append_df = append_then_die  # type: ignore[method-assign]
    elif boundary == "after_log":
        write_log = store.write_log

        def write_then_die(*args: Any, **kwargs: Any) -> None:
            write_log(*args, **kwargs)
            die()

        store.write_log = write_then_die
    elif boundary == "after_commit":
        tables._prune = _killing_before(tables._prune)


def main(argv: list[str]) -> int:
    run_id, boundary = argv
    if boundary not in BOUNDARIES:
        raise SystemExit(f"boundary must be one of {BOUNDARIES}")
    from ml.tasks.publishing import publish_recommendations

    _arm(boundary)
    print("publishing", flush=True)
    out = publish_recommendations(run_id=run_id, propensity_draws=32)
    print("published", out["version"], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
