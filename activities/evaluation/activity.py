"""The ``evaluate`` activity (GPU queue): candidate vs production champion on the test split.

Both models are validated on the same materialized snapshot with the same imgsz, conf, iou and
batch in the same process (same library versions); the champion is the version the registry's
production alias points to, loaded with its sha256 verified. The paired bootstrap
(:mod:`.bootstrap`) gives the interval of the mAP50-95 difference.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from temporalio import activity

from activities.contracts import names
from activities.contracts.evaluation import EvaluateRequest, EvaluateResult
from activities.evaluation.common import Progress, fetch_weights, heartbeat_progress, no_progress
from activities.infra.errors import BadInputError, translate_errors
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore

log = logging.getLogger(__name__)


def class_mismatch(what: str, theirs: list[str], ours: list[str], snapshot: str) -> str:
    return (
        f"{what} was trained on classes {theirs} but snapshot {snapshot} has {ours}: "
        "the models cannot be compared on it"
    )


def evaluate(
    store: ObjectStore,
    settings: Settings,
    request: EvaluateRequest,
    *,
    progress: Progress = no_progress,
) -> EvaluateResult:
    """Evaluate the candidate (and the production champion, if any) on the test split."""
    from activities.infra.yolo_env import bootstrap_offline

    bootstrap_offline()
    from activities.dataset import materialize_snapshot
    from activities.evaluation.bootstrap import difference_ci
    from activities.evaluation.validate import library_versions, run_val
    from activities.registry import Registry

    snapshot = request.snapshot
    expected = list(snapshot.class_names)
    if not snapshot.counts.get("test", 1):
        raise BadInputError(f"snapshot {snapshot.key} has no test images to evaluate on")
    registry = Registry(store, settings.models_bucket)
    champion_version = registry.production_version(request.model)
    champion_meta = None
    note = None
    if champion_version is not None:
        champion_meta = registry.metadata(request.model, champion_version)
        if list(champion_meta.class_names) != expected:
            message = class_mismatch(
                f"production champion {request.model} v{champion_version}",
                list(champion_meta.class_names),
                expected,
                snapshot.key,
            )
            if not request.skip_comparison_on_class_mismatch:
                raise BadInputError(
                    f"{message} (set skip_comparison_on_class_mismatch to gate on the "
                    "absolute floor only)"
                )
            note = f"comparison skipped: {message}"
            champion_meta = None

    dataset = materialize_snapshot(store, settings, snapshot, on_progress=progress)
    candidate_path = fetch_weights(store, settings, request.candidate, ".pt")
    work = settings.cache_dir / "work"
    work.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="evaluate-", dir=work))
    try:
        champ_path = None
        if champion_meta is not None and champion_version is not None:  # verified first
            champ_path = registry.load_model(request.model, champion_version, tmp / "champion.pt")
        val_args = dict(
            data_yaml=dataset.data_yaml,
            split="test",
            imgsz=request.imgsz,
            conf=request.conf,
            iou=request.iou,
            batch=request.batch,
            device=request.device,
            workdir=tmp,
        )
        cand = run_val(
            candidate_path,
            **val_args,
            on_batch=lambda done, total: progress("candidate", done, total),
        )
        cand_names = [cand.names[i] for i in sorted(cand.names)]
        if cand_names != expected:
            raise BadInputError(class_mismatch("the candidate", cand_names, expected, snapshot.key))
        champ = None
        ci = None
        if champ_path is not None:
            champ = run_val(
                champ_path,
                **val_args,
                on_batch=lambda done, total: progress("champion", done, total),
            )
            ci = difference_ci(
                cand.stats,
                champ.stats,
                resamples=request.bootstrap_resamples,
                seed=request.bootstrap_seed,
                level=request.ci_level,
                on_round=lambda done, total: progress("bootstrap", done, total),
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return EvaluateResult(
        model=request.model,
        class_names=expected,
        images=cand.images,
        instances=cand.instances,
        instances_per_class=cand.instances_per_class,
        candidate=cand.metrics,
        champion=champ.metrics if champ else None,
        champion_version=champion_version,
        ci=ci,
        comparison_note=note,
        imgsz=request.imgsz,
        conf=request.conf,
        iou=request.iou,
        versions=library_versions(),
    )


class EvaluationActivities:
    """The evaluate activity bound to one store (GPU workers)."""

    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store

    @activity.defn(name=names.EVALUATE)
    @translate_errors
    def evaluate(self, request: EvaluateRequest) -> EvaluateResult:
        """Candidate and production champion on the same test split, with a bootstrap CI."""
        return evaluate(self.store, self.settings, request, progress=heartbeat_progress())
