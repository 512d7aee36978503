"""One publishing task function in its own process that SIGKILLs itself right after a named
function returns, for the sharded-publish fault tests:
``python -m tests.publish.dying_task AFTER TASK PLAN_JSON [SHARD]``.

``AFTER`` is ``module:attribute`` (``ml.publish.shards:copy_arrow``,
``pandas:DataFrame.to_parquet``): that function is wrapped to run, then kill the process;
``TASK`` is a function of ``ml.tasks.publishing`` called with the plan read from ``PLAN_JSON``
(and the shard number, for ``score_publish_shard``). :func:`run_until_killed` runs it from a test.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.publish.slate_publisher import die

ROOT = Path(__file__).resolve().parents[2]


def _kill_after(target: str) -> None:
    module, _, path = target.partition(":")
    *owners, name = path.split(".")
    owner: Any = importlib.import_module(module)
    for attribute in owners:
        owner = getattr(owner, attribute)
    original = getattr(owner, name)

    def then_die(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        die()
        return out

    setattr(owner, name, then_die)


def run_until_killed(after: str, task: str, plan: dict[str, Any], folder: Path, *args: int) -> None:
    """Run ``task(plan, *args)`` in a subprocess killed right after ``after`` returns; fail
    unless it died by SIGKILL."""
    plan_file = folder / f"{task}-plan.json"
    plan_file.write_text(json.dumps(plan))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.publish.dying_task", after, task, str(plan_file), *map(str, args)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == -9, proc.stderr[-2000:]


def main(argv: list[str]) -> int:
    after, task, plan_file, *args = argv
    _kill_after(after)
    from ml.tasks import publishing

    getattr(publishing, task)(json.loads(Path(plan_file).read_text()), *map(int, args))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
