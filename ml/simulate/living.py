"""The living shop: the explore/exploit loop through the platform's own DAGs, day after day.

Set-up (day 0) runs every DAG once on the generated shop's history: ``ingest_events``,
``build_features``, ``finetune_tagger`` (on the label file the shop generator writes,
``_ground_truth/item_tags.parquet``), ``backfill_tags`` (the history's last day),
``evaluate_policies`` (nothing logged yet: the gate records that), ``retrain_models``,
``publish_recommendations``, ``publish_audiences`` and ``watch_serving`` (the served table's
age).

Then each simulated day ``d`` (dates after the history's last day):

1. the shop's users answer the slates published in ``serving.recommendations_current``
   (``ml.simulate.landing.ShopDays``): a landing batch in ``<landing>/<shop>-days/day-NNN/``,
   like a shop export;
2. the DAGs run in the order their assets trigger them (``DAY_DAGS``): ``ingest_events`` ->
   ``build_features`` -> ``evaluate_policies`` and ``retrain_models`` -> ``publish_recommendations``
   -> ``publish_audiences``; ``backfill_tags`` (a daily schedule) computes the day's partition of
   tags and interest profiles after the features are built, so the publish sees them.

Every day is recorded in ``ml.shop_days`` (one row per shop and day, replaced when a day is run
again), which is also how a later run continues where the last one stopped.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ml.simulate.landing import DayAnswers, ShopDays
from ml.warehouse import Warehouse

log = logging.getLogger(__name__)

SHOP_DAYS = "ml.shop_days"
SETUP_DAGS = (
    "ingest_events",
    "build_features",
    "finetune_tagger",
    "backfill_tags",
    "evaluate_policies",
    "retrain_models",
    "publish_recommendations",
    "publish_audiences",
    "watch_serving",
)
DAY_DAGS = (
    "ingest_events",
    "build_features",
    "backfill_tags",
    "evaluate_policies",
    "retrain_models",
    "publish_recommendations",
    "publish_audiences",
)
# the demo fine-tunes the tagger once on a capped label sample: a few minutes of MiniLM
# training would be most of the demo (the full fine-tune is `python -m ml bench tagger`)
DEMO_TAGGER_CONF: dict[str, Any] = {
    "label_fraction": 0.5,
    "candidates": [
        {"model": "logistic_regression", "params": {"C": 100.0, "class_weight": "balanced"}},
        {"model": "transformer", "params": {"epochs": 1, "max_length": 32, "class_weight": "balanced"}},
    ],
}

RunDag = Callable[[str, dict[str, Any]], Any]


@dataclass
class LoopSettings:
    """What the living shop runs.

    ``policy``: empty = serve whatever the policy gate promotes (the registry's champion); a
    policy name pins it for every publish (the benchmark's ``greedy`` arm). ``conf``: extra run
    conf per DAG id (tests and CI pass cheaper candidate sets here; the DAGs' own Params are the
    production defaults). ``horizon_days``: the span over which the users' interests drift."""

    size: str = "small"
    seed: int = 7
    days: int = 3
    visit_share: float = 0.3
    policy: str = ""
    horizon_days: int = 30
    conf: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.days < 0:
            raise ValueError(f"days must be >= 0, got {self.days}")
        if not 0 < self.visit_share <= 1:
            raise ValueError(f"visit_share must be in (0, 1], got {self.visit_share}")


@dataclass
class DayReport:
    """One day of the living shop: what was served, what it earned, what the DAGs decided."""

    day: int
    date: str
    policy: str
    policy_label: str
    model_version: str
    campaign: str
    stats: dict[str, float | int]
    graduated_items: int
    policy_gate: dict[str, Any]
    runs: dict[str, str]
    seconds: dict[str, float]

    def row(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "date": self.date,
            "policy": self.policy,
            "policy_label": self.policy_label,
            "model_version": self.model_version,
            "campaign": self.campaign,
            **self.stats,
            "graduated_items": self.graduated_items,
            "promoted": bool(self.policy_gate.get("promoted")),
        }


class LivingShop:
    """Runs the set-up and the simulated days (see the module docstring).

    ``shop_dir``: a shop written by ``ml.shop.generate.write_shop``; ``run_dag(dag_id, conf)``
    runs one DAG for real (default: the embedded runtime's ``dag.test``)."""

    def __init__(self, shop_dir: Path, settings: LoopSettings, run_dag: RunDag | None = None):
        from ml.orchestration import local

        self.shop_dir = Path(shop_dir)
        self.settings = settings
        self.run_dag: RunDag = run_dag or local.run_dag
        self.key = self.shop_dir.name
        self.wh = Warehouse.from_env()
        self._shop: ShopDays | None = None

    # ---- state ------------------------------------------------------------------------------
    def _days(self) -> pd.DataFrame:
        """Every row of ``ml.shop_days`` (shop, day, report), by day; empty before the first."""
        from ml.explore.store import read_optional

        df = read_optional(self.wh, SHOP_DAYS, ("shop", "day", "report"))
        return pd.DataFrame(columns=["shop", "day", "report"]) if df is None else df.sort_values("day")

    def days_done(self) -> list[int]:
        df = self._days()
        return [int(d) for d in df.loc[df["shop"] == self.key, "day"]]

    def other_shops(self) -> list[str]:
        """Shops other than this one that this warehouse already lives (their ids would mix)."""
        return sorted({str(x) for x in self._days()["shop"]} - {self.key})

    def reports(self) -> list[dict[str, Any]]:
        """Every recorded day of this shop, oldest first (rows of :meth:`DayReport.row` plus runs)."""
        df = self._days()
        return [json.loads(r) for r in df.loc[df["shop"] == self.key, "report"]]

    def _record(self, day: int, report: dict[str, Any]) -> None:
        with self.wh.connect() as con:
            self.wh.begin(con)
            self.wh.execute(
                con,
                f"create table if not exists {SHOP_DAYS} (shop varchar, day integer, date varchar, "
                "report varchar, recorded_at timestamp)",
            )
            self.wh.execute(con, f"delete from {SHOP_DAYS} where shop = ? and day = ?", [self.key, day])
            self.wh.execute(
                con,
                f"insert into {SHOP_DAYS} values (?, ?, ?, ?, ?)",
                [
                    self.key,
                    day,
                    report["date"],
                    json.dumps(report, default=str),
                    datetime.now(UTC).replace(tzinfo=None),
                ],
            )
            self.wh.commit(con)

    def history_end(self) -> pd.Timestamp:
        """Midnight (UTC, naive) after the shop history's last event: simulated day 1 starts here."""
        manifest = json.loads((self.shop_dir / "_ground_truth" / "manifest.json").read_text())
        end = pd.Timestamp(manifest["end"])
        end = end.tz_convert("UTC").tz_localize(None) if end.tzinfo else end
        return end.normalize() if end == end.normalize() else end.normalize() + pd.Timedelta(days=1)

    def date_of(self, day: int) -> pd.Timestamp:
        return self.history_end() + pd.Timedelta(days=day - 1)

    def days_dir(self) -> Path:
        """Where the simulated days' landing batches go: beside the shop in the landing folder
        (under this state folder, so two runs on one shop never share a batch)."""
        from ml import config

        return config.landing_dir() / f"{self.key}-days"

    def day_dir(self, day: int) -> Path:
        return self.days_dir() / f"day-{day:03d}"

    def shop(self) -> ShopDays:
        """The users, with fatigue, purchases and discoveries of the days already written."""
        if self._shop is None:
            s = self.settings
            self._shop = ShopDays(self.shop_dir, seed=s.seed, days=s.horizon_days, visit_share=s.visit_share)
            earlier = sorted(self.days_dir().glob("day-*/events.parquet"))
            done = set(self.days_done())
            kept = [p for p in earlier if int(p.parent.name.split("-")[1]) in done]
            if kept:
                self._shop.replay(pd.concat([pd.read_parquet(p) for p in kept], ignore_index=True))
        return self._shop

    # ---- running ----------------------------------------------------------------------------
    def _run(self, dag_id: str, conf: dict[str, Any], runs: dict[str, str], seconds: dict[str, float]) -> None:
        t0 = time.perf_counter()
        run = self.run_dag(dag_id, {**conf, **self.settings.conf.get(dag_id, {})})
        seconds[dag_id] = round(time.perf_counter() - t0, 1)
        runs[dag_id] = str(getattr(run, "run_id", run))
        log.info("living shop: %s %s in %.1f s", dag_id, runs[dag_id], seconds[dag_id])

    def setup(self) -> dict[str, Any] | None:
        """Day 0: every DAG once on the shop's history; nothing when it was done before."""
        if 0 in self.days_done():
            return None
        runs: dict[str, str] = {}
        seconds: dict[str, float] = {}
        last = (self.history_end() - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
        labels = str(self.shop_dir / "_ground_truth" / "item_tags.parquet")
        confs: dict[str, dict[str, Any]] = {
            "ingest_events": {"paths": [str(self.shop_dir)]},
            "finetune_tagger": {"labels_path": labels},
            "backfill_tags": {"start_date": last, "end_date": last},
            "publish_recommendations": self._publish_conf(),
        }
        for dag_id in SETUP_DAGS:
            self._run(dag_id, confs.get(dag_id, {}), runs, seconds)
        report = {"day": 0, "date": last, "runs": runs, "seconds": seconds}
        self._record(0, report)
        return report

    def _publish_conf(self) -> dict[str, Any]:
        return {"policy": self.settings.policy} if self.settings.policy else {}

    def write_day(self, day: int) -> tuple[dict[str, Any], DayAnswers]:
        """The users' answers on simulated day ``day`` (>= 1) to what is published now, written
        as a landing batch to :meth:`day_dir`. Returns (what was served, the answers)."""
        if day < 1:
            raise ValueError(f"simulated days start at 1, got {day}")
        served = self._served()
        answers = self.shop().answer(served["slates"], day, self.date_of(day))
        folder = self.day_dir(day)
        folder.mkdir(parents=True, exist_ok=True)
        answers.events.to_parquet(folder / "events.parquet", index=False)
        return served, answers

    def run_day(self, day: int) -> DayReport:
        """Simulated day ``day`` (>= 1): the users answer what is published, then the DAGs run."""
        served, answers = self.write_day(day)
        folder = self.day_dir(day)
        date = answers.date
        runs: dict[str, str] = {}
        seconds: dict[str, float] = {}
        partition = date.strftime("%Y-%m-%d")
        confs: dict[str, dict[str, Any]] = {
            "ingest_events": {"paths": [str(folder)]},
            "backfill_tags": {"start_date": partition, "end_date": partition},
            "publish_recommendations": self._publish_conf(),
        }
        for dag_id in DAY_DAGS:
            self._run(dag_id, confs.get(dag_id, {}), runs, seconds)
        report = DayReport(
            day=day,
            date=partition,
            policy=served["policy"],
            policy_label=served["policy_label"],
            model_version=served["model_version"],
            campaign=served["campaign"],
            stats=answers.stats(),
            graduated_items=self._graduated(),
            policy_gate=self._policy_gate(runs["evaluate_policies"]),
            runs=runs,
            seconds=seconds,
        )
        self._record(day, {**report.row(), "policy_gate": report.policy_gate, "runs": runs, "seconds": seconds})
        return report

    def run(self) -> list[DayReport]:
        """Set-up (if not done), then ``settings.days`` new days after the last recorded one."""
        self.setup()
        first = max(self.days_done(), default=0) + 1
        return [self.run_day(d) for d in range(first, first + self.settings.days)]

    # ---- reading what the platform did ------------------------------------------------------
    def _served(self) -> dict[str, Any]:
        """The slates currently published, with the policy, recommender and campaign behind them."""
        with self.wh.connect(read_only=True) as con:
            slates = self.wh.query(
                "select user_id, rank, item_id, recommendation_id, is_exploration, policy, campaign "
                "from serving.recommendations_current",
                None,
                con,
            )
            pub = self.wh.query(
                "select model_version, policy_version from serving.publish_log where name = 'recommendations' "
                "order by created_at desc limit 1",
                None,
                con,
            )
        campaigns = sorted(slates["campaign"].dropna().astype(str).unique())
        version = str(pub["policy_version"].iloc[0]) if len(pub) else ""
        return {
            "slates": slates,
            "policy": version,
            "policy_label": self._policy_label(version),
            "model_version": str(pub["model_version"].iloc[0]) if len(pub) else "",
            "campaign": ", ".join(campaigns) or "-",
        }

    def _policy_label(self, version: str) -> str:
        """How the evaluation names the policy of a published version (``name(k=v,...)``)."""
        from ml.ope.gate import policy_label
        from ml.registry import Registry

        for marker in ("-adhoc-", "-default"):  # a pinned policy (no params) or the default
            if marker in version:
                return version.split(marker)[0]
        if not version:
            return ""
        got = Registry(self.wh).get(version)
        return policy_label(got["model_name"], dict(got["params"]))

    def _graduated(self) -> int:
        """New items (younger than the new-item budget's max age) whose CTR interval graduated them."""
        from ml.marketing.defaults import DEFAULT_NEW_ITEM_BUDGET
        from ml.marketing.new_items import NewItemBudget, graduated

        budget = dict(DEFAULT_NEW_ITEM_BUDGET)
        max_age = float(budget.pop("max_age_days"))
        kept = {k: v for k, v in budget.items() if k in NewItemBudget.__dataclass_fields__}
        f = self.wh.query("select age_days, n_impressions, n_clicks from marts.item_features")
        young = f["age_days"].fillna(float("inf")) <= max_age
        done = graduated(
            f["n_clicks"].fillna(0).to_numpy(float), f["n_impressions"].fillna(0).to_numpy(float), NewItemBudget(**kept)
        )
        return int((young.to_numpy() & done).sum())

    def _policy_gate(self, run_id: str) -> dict[str, Any]:
        """The policy gate's decision of this evaluation run and the champion it leaves."""
        from ml.ope.gate import policy_label
        from ml.registry import Registry
        from ml.tasks.policies import current_policy

        dec = Registry(self.wh).decisions("policy")
        mine = dec[dec["run_id"] == run_id]
        cur = current_policy(self.wh)
        out: dict[str, Any] = {"champion": policy_label(cur["policy"], cur["params"])}
        if len(mine):
            last = mine.iloc[-1]
            details = last["details"]
            out |= {
                "promoted": bool(last["promoted"]),
                "reason": str(last["reason"]),
                "details": json.loads(details) if isinstance(details, str) else details,
            }
        return out


def day_table(rows: list[dict[str, Any]]) -> str:
    """The day-by-day table the demo prints: what served each day's slates (the policy, the
    policy champion the day's gate left for the next publish, the recommender), the
    impressions, the click-through of exploration and exploitation slots, the share of the
    users' true interests discovered so far, new items graduated, and the active campaign."""
    cols = (
        ("day", 3, ">"),
        ("date", 10, "<"),
        ("serving policy", 22, "<"),
        ("champion after", 22, "<"),
        ("recommender", 22, "<"),
        ("impr", 6, ">"),
        ("CTR expl", 8, ">"),
        ("CTR expt", 8, ">"),
        ("found", 6, ">"),
        ("grad", 4, ">"),
        ("campaign", 0, "<"),
    )
    head = " ".join(f"{name:{align}{width}}" if width else name for name, width, align in cols)
    out = [head, "-" * len(head)]
    for r in rows:
        if not r.get("day"):
            continue
        cells = (
            r["day"],
            r["date"],
            _short(str(r.get("policy_label") or r["policy"])),
            _short(str(r.get("policy_gate", {}).get("champion", ""))),
            str(r["model_version"])[:22],
            f"{r['impressions']:,}",
            f"{r['ctr_exploration']:.3f}",
            f"{r['ctr_exploitation']:.3f}",
            f"{r['interests_discovered']:.3f}",
            r["graduated_items"],
            r["campaign"],
        )
        out.append(
            " ".join(
                f"{cell:{align}{width}}" if width else str(cell)
                for cell, (_, width, align) in zip(cells, cols, strict=True)
            )
        )
    return "\n".join(out)


def _short(label: str, width: int = 22) -> str:
    """A policy label that fits its column: the name alone when its parameters do not fit."""
    return label if len(label) <= width else label.split("(")[0][:width]


__all__ = ["DAY_DAGS", "SETUP_DAGS", "DayAnswers", "DayReport", "LivingShop", "LoopSettings", "day_table"]
