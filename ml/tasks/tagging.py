"""Task functions of the finetune_tagger and backfill_tags DAGs (also used by ``python -m ml tags``)."""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any, NoReturn

from ml.tagging.defaults import FAMILY, MIN_LABELS, PRIMARY_METRIC, TEST_SHARE
from ml.warehouse import Warehouse

log = logging.getLogger(__name__)


def _fail(message: str) -> NoReturn:
    from ml.orchestration.errors import fail_without_retry

    fail_without_retry(message)


def _skip(message: str) -> dict[str, Any]:
    """Skip the current Airflow task (no asset event); outside Airflow, return the reason."""
    try:
        from airflow.sdk.exceptions import AirflowSkipException
    except ImportError:
        return {"skipped": True, "reason": message}
    raise AirflowSkipException(message)


# ---- finetune_tagger -----------------------------------------------------------------------
def load_tag_labels(path: str | None, fraction: float = 1.0, warehouse: str | None = None) -> dict[str, Any]:
    """Load a label file (item_id, tag) into ``ml.tag_labels``; nothing to do without a path.
    A bad file fails without retries (the message names file, row and rule)."""
    if not path:
        return {"loaded": False, "reason": "no labels_path given; using the labels already in ml.tag_labels"}
    from ml.tagging.data import LabelFileError, import_labels

    try:
        out = import_labels(path, Warehouse.from_env(warehouse), fraction=fraction)
    except (LabelFileError, FileNotFoundError) as exc:
        _fail(str(exc))
    log.info("labels %s", out)
    return {"loaded": True, **out}


def _training_data(wh: Warehouse, test_share: float, min_labels: int) -> tuple[Any, Any, str]:
    from ml.tagging.data import load_catalog, load_labels, training_set
    from ml.tagging.vocabulary import Vocabulary

    vocabulary = Vocabulary.from_warehouse(wh)
    catalog = load_catalog(wh)
    labels = load_labels(wh)
    data = training_set(catalog, labels, vocabulary, min_labels=min_labels, test_share=test_share)
    basis = (
        f"{len(data.item_ids)}|{sorted(zip(data.item_ids, map(tuple, data.labels), strict=True))}|{vocabulary.version}"
    )
    snapshot = f"labels-{hashlib.sha1(basis.encode()).hexdigest()[:10]}"
    return data, vocabulary, snapshot


def build_training_set(
    test_share: float = TEST_SHARE, min_labels: int = MIN_LABELS, warehouse: str | None = None
) -> dict[str, Any]:
    """Summarise the labelled catalogue and its stable train/test split; fails (no retry) when
    there is nothing to learn from."""
    data, _, snapshot = _training_data(Warehouse.from_env(warehouse), test_share, min_labels)
    summary = {"snapshot_id": snapshot, **data.summary()}
    if not data.learnable_tags or not summary["train_items"]:
        _fail(
            f"no learnable tags (labelled items: {summary['labelled_items']}, min_labels {min_labels}): "
            "load labels with `python -m ml tags labels load FILE` or the labels_path param"
        )
    log.info("training set %s", summary)
    return summary


def train_tagger(
    model: str,
    params: dict[str, Any] | None = None,
    run_id: str = "manual",
    test_share: float = TEST_SHARE,
    min_labels: int = MIN_LABELS,
    zero_shot_threshold: float | None = 0.35,
    warehouse: str | None = None,
) -> dict[str, Any]:
    """Fit one candidate on the train split, evaluate on the held-out split, register it.
    Vocabulary tags it cannot learn are assigned zero-shot at ``zero_shot_threshold`` (cosine
    similarity to the tag's description); ``None`` turns zero-shot tags off for this version."""
    from ml.registry import ModelVersion, Registry, save_artifact
    from ml.tagging.catalog import TaggerArtifact
    from ml.tagging.train import fit_and_evaluate

    wh = Warehouse.from_env(warehouse)
    data, vocabulary, snapshot = _training_data(wh, test_share, min_labels)
    t0 = time.perf_counter()
    tagger, metrics = fit_and_evaluate(model, dict(params or {}), data, vocabulary)
    train_seconds = time.perf_counter() - t0
    artifact = TaggerArtifact(
        tagger=tagger,
        vocabulary_version=vocabulary.version,
        zero_shot_threshold=zero_shot_threshold,
        training={"snapshot_id": snapshot, "test_share": test_share, "min_labels": min_labels, **data.summary()},
    )
    mv = ModelVersion(
        family=FAMILY,
        model_name=model,
        params={
            **tagger.get_params(),
            "test_share": test_share,
            "min_labels": min_labels,
            "zero_shot_threshold": zero_shot_threshold,
        },
        metrics=metrics,
        snapshot_id=snapshot,
        artifact_path="",
        artifact_bytes=0,
        train_seconds=round(train_seconds, 3),
        run_id=run_id,
    )
    mv.artifact_path, mv.artifact_bytes = save_artifact(artifact, FAMILY, mv.version_id)
    Registry(wh).register(mv)
    log.info("registered %s %s", mv.version_id, metrics)
    return {"version_id": mv.version_id, "model": model, "metrics": metrics, "snapshot_id": snapshot}


def evaluate_and_gate_tagger(
    candidates: list[dict[str, Any]],
    run_id: str = "manual",
    margin: float = 0.0,
    test_share: float = TEST_SHARE,
    min_labels: int = MIN_LABELS,
    warehouse: str | None = None,
) -> dict[str, Any]:
    """Promote the best candidate (macro F1) only if it beats the champion *re-scored on the
    same held-out items* by ``margin`` and its artifact reloads and scores finitely."""
    from ml.registry import Registry, load_artifact
    from ml.tagging.train import evaluate_tagger, finite_scores

    wh = Warehouse.from_env(warehouse)
    reg = Registry(wh)
    ok = [c for c in candidates if c and PRIMARY_METRIC in c.get("metrics", {})]
    if not ok:
        reason = "no tagger candidate produced held-out metrics"
        reg.record_decision(FAMILY, run_id, None, None, False, reason, {})
        return {"promoted": False, "reason": reason}
    best = max(ok, key=lambda c: c["metrics"][PRIMARY_METRIC])
    b = float(best["metrics"][PRIMARY_METRIC])
    details: dict[str, Any] = {"candidates": {c["version_id"]: c["metrics"] for c in ok}}
    data, _, _ = _training_data(wh, test_share, min_labels)
    te_texts, te_labels, _ = data.part(test=True)
    champ = reg.champion(FAMILY)
    champ_id = champ["version_id"] if champ else None
    champ_score = None
    if champ and champ_id != best["version_id"]:
        art = load_artifact(champ["artifact_path"])
        champ_metrics = evaluate_tagger(art.tagger, te_texts, te_labels)
        champ_score = float(champ_metrics[PRIMARY_METRIC])
        details["champion_rescored"] = {champ["version_id"]: champ_metrics}
    if champ and champ["version_id"] == best["version_id"]:
        promoted, reason = False, f"{best['version_id']} is already champion"
    elif champ_score is not None and b < champ_score + margin:
        promoted = False
        reason = (
            f"challenger {best['version_id']} {PRIMARY_METRIC}={b:.4f} does not beat champion "
            f"{champ_id} re-scored on the same held-out items {champ_score:.4f} + margin {margin}"
        )
    else:
        art = load_artifact(reg.get(best["version_id"])["artifact_path"])
        smoke = finite_scores(art.tagger, te_texts[:8] or ["a plain item"])
        details["smoke_load"] = {"ok": smoke}
        if not smoke:
            promoted, reason = False, f"smoke load of {best['version_id']} gave invalid scores"
        else:
            promoted = True
            prev = f"{champ['version_id']} ({champ_score:.4f})" if champ and champ_score is not None else "none"
            reason = f"{best['version_id']} {PRIMARY_METRIC}={b:.4f} beats champion {prev} + margin {margin}"
    if promoted:
        reg.set_champion(FAMILY, best["version_id"], reason)
    reg.record_decision(
        FAMILY, run_id, best["version_id"], champ["version_id"] if champ else None, promoted, reason, details
    )
    log.info("tagger gate: %s", reason)
    current = reg.champion(FAMILY)
    return {"promoted": promoted, "reason": reason, "champion": current["version_id"] if current else None}


# ---- backfill_tags --------------------------------------------------------------------------
def plan_tag_backfill(
    start_date: str | None = None,
    end_date: str | None = None,
    tagger_version: str | None = None,
    force: bool = False,
    data_interval_start: Any = None,
    data_interval_end: Any = None,
    logical_date: Any = None,
    warehouse: str | None = None,
) -> dict[str, Any]:
    """Partitions to (re)compute: the params' date range, else the run's own daily partition;
    completed partitions of that tagger version are skipped unless ``force``."""
    from ml.tagging.backfill import partition_for_run, plan_backfill

    if bool(start_date) != bool(end_date):
        _fail("give both start_date and end_date, or neither (then the run's own day is used)")
    if not start_date:
        day = partition_for_run(data_interval_start, data_interval_end, logical_date)
        start_date = end_date = day.isoformat()
    try:
        plan = plan_backfill(Warehouse.from_env(warehouse), start_date, end_date, tagger_version or None, force)
    except (LookupError, KeyError, ValueError) as exc:
        _fail(str(exc))
    log.info("plan %s", plan.as_dict())
    return plan.as_dict()


def backfill_tags(
    plan: dict[str, Any],
    batch_size: int = 256,
    dry_run: bool = False,
    run_id: str = "manual",
    force: bool = False,
    threads: int | None = None,
    pause_seconds: float = 0.0,
    warehouse: str | None = None,
    on_partition: Any = None,
) -> dict[str, Any]:
    """Compute and (unless ``dry_run``) write every planned partition, one transaction each."""
    from ml.tagging.backfill import TagBackfill

    job = TagBackfill(
        Warehouse.from_env(warehouse),
        plan["tagger_version"],
        batch_size=batch_size,
        dry_run=dry_run,
        run_id=run_id,
        force=force,
        threads=threads,
        pause_seconds=pause_seconds,
    )
    return job.run(plan["todo"], on_partition=on_partition)


def switch_current_tags(
    report: dict[str, Any], run_id: str = "manual", make_current: bool = True, warehouse: str | None = None
) -> dict[str, Any]:
    """Point ``ml.item_tags_current`` / ``ml.user_interest_profiles_current`` at the report's
    tagger version. Skipped (no asset event) for dry runs or when ``make_current`` is off."""
    from ml.tagging.store import switch_current

    if report.get("dry_run") or not make_current:
        return _skip("dry run: nothing was written" if report.get("dry_run") else "make_current is off")
    return {"switched": True, **switch_current(Warehouse.from_env(warehouse), report["tagger_version"], run_id)}
