"""The ``evaluate`` activity (GPU queue): candidate vs production champion on the test split.

Both models are validated on the same materialized snapshot with the same imgsz, conf, iou and
batch in the same process (same library versions); the champion is the version the registry's
production alias points to, loaded with its sha256 verified. The paired bootstrap
(:mod:`.bootstrap`) gives the intervals of the mAP50-95 difference and of each class's AP50-95
difference. With ``options.evidence`` the candidate's plots and the per-image comparison
pictures are stored under ``runs/{workflow_id}/evaluation/{run_id}-{attempt}/`` in the runs
bucket (:mod:`.evidence`); publish copies them into the version.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from temporalio import activity

from activities.contracts import names
from activities.contracts.evaluation import DifferenceCI, EvaluateRequest, EvaluateResult
from activities.contracts.evidence import Evidence
from activities.evaluation.common import fetch_weights, scratch_dir
from activities.evaluation.evidence import EvidenceTarget
from activities.infra import timings
from activities.infra.errors import BadInputError, SentinelError, translate_errors
from activities.infra.heartbeat import Progress, heartbeat_progress, no_progress
from activities.infra.settings import Settings
from activities.infra.signing import keyring
from activities.infra.storage import ObjectStore
from activities.tracking import Tracking
from activities.tracking.records import evaluation_metrics

if TYPE_CHECKING:
    from activities.evaluation.validate import ValRun
    from activities.registry import Registry

log = logging.getLogger(__name__)


def class_mismatch(what: str, theirs: list[str], ours: list[str], snapshot: str) -> str:
    return (
        f"{what} was trained on classes {theirs} but snapshot {snapshot} has {ours}: "
        "the models cannot be compared on it"
    )


@dataclass(frozen=True)
class _Champion:
    """Production when evaluation starts: its version, and whether it is compared."""

    version: int | None
    compared: bool
    note: str | None = None


def _champion(registry: Registry, request: EvaluateRequest) -> _Champion:
    """Production's version; compared unless its classes differ from the snapshot's.

    A class mismatch fails the evaluation (BadInputError), or with
    ``skip_comparison_on_class_mismatch`` skips the comparison with a note.
    """
    version = registry.production_version(request.model)
    if version is None:
        return _Champion(None, compared=False)
    meta = registry.metadata(request.model, version)
    theirs = list(meta.class_names)
    expected = list(request.snapshot.class_names)
    if meta.snapshot.task != request.snapshot.task:  # never comparable, whatever the options
        raise BadInputError(
            f"production champion {request.model} v{version} is a {meta.snapshot.task} model "
            f"but snapshot {request.snapshot.key} is a {request.snapshot.task} dataset"
        )
    if theirs == expected:
        return _Champion(version, compared=True)
    message = class_mismatch(
        f"production champion {request.model} v{version}", theirs, expected, request.snapshot.key
    )
    if not request.options.skip_comparison_on_class_mismatch:
        raise BadInputError(
            f"{message} (set skip_comparison_on_class_mismatch to gate on the absolute floor only)"
        )
    return _Champion(version, compared=False, note=f"comparison skipped: {message}")


@dataclass(frozen=True)
class _Scores:
    """The validation runs of both models and the bootstrap intervals of their differences."""

    candidate: ValRun
    champion: ValRun | None
    ci: DifferenceCI | None
    per_class_ci: dict[str, DifferenceCI]


def _score(
    registry: Registry,
    request: EvaluateRequest,
    champion: _Champion,
    data_yaml: Path,
    candidate_path: Path,
    workdir: Path,
    progress: Progress,
    plots_dir: Path | None = None,
) -> _Scores:
    """Validate the candidate (and the compared champion) with the same settings.

    ``plots_dir``: keep the candidate's plots there and record both models' boxes (evidence).
    """
    from activities.evaluation.bootstrap import paired_bootstrap
    from activities.evaluation.validate import run_val

    options = request.options
    champ_path = None
    if champion.compared and champion.version is not None:  # verified before anything runs
        with timings.span("fetch_weights"):
            champ_path = registry.load_model(
                request.model, champion.version, workdir / "champion.pt"
            )
    val = functools.partial(
        run_val,
        data_yaml=data_yaml,
        split="test",
        imgsz=request.imgsz,
        conf=options.conf,
        iou=options.iou,
        batch=request.batch,
        device=request.device,
        workdir=workdir,
        boxes_conf=options.evidence_conf if plots_dir is not None else None,
        task=request.snapshot.task,
    )
    with timings.span("val_candidate"):
        cand = val(
            candidate_path,
            on_batch=lambda done, total: progress("candidate", done, total),
            plots_dir=plots_dir,
        )
    cand_names = [cand.names[i] for i in sorted(cand.names)]
    expected = list(request.snapshot.class_names)
    if cand_names != expected:
        raise BadInputError(
            class_mismatch("the candidate", cand_names, expected, request.snapshot.key)
        )
    if champ_path is None:
        return _Scores(cand, None, None, {})
    with timings.span("val_champion"):
        champ = val(champ_path, on_batch=lambda done, total: progress("champion", done, total))
    with timings.span("bootstrap"):
        intervals = paired_bootstrap(
            cand.stats,
            champ.stats,
            resamples=options.bootstrap_resamples,
            seed=options.bootstrap_seed,
            level=options.ci_level,
            on_round=lambda done, total: progress("bootstrap", done, total),
        )
    per_class = {cand.names[cls]: ci for cls, ci in intervals.per_class.items()}
    return _Scores(cand, champ, intervals.overall, per_class)


def evaluate(
    store: ObjectStore,
    settings: Settings,
    request: EvaluateRequest,
    *,
    progress: Progress = no_progress,
    evidence_prefix: str | None = None,
) -> EvaluateResult:
    """Evaluate the candidate (and the production champion, if any) on the test split.

    ``evidence_prefix``: where in the runs bucket the evidence goes (None: no evidence).
    """
    from activities.infra.yolo_env import bootstrap_offline

    bootstrap_offline()
    from activities.dataset import materialize_snapshot
    from activities.evaluation.validate import library_versions
    from activities.registry import Registry

    snapshot = request.snapshot
    if not snapshot.counts.get("test", 1):
        raise BadInputError(f"snapshot {snapshot.key} has no test images to evaluate on")
    registry = Registry(store, settings.models_bucket, keyring(settings))
    champion = _champion(registry, request)
    with_evidence = evidence_prefix is not None and request.options.evidence
    with timings.span("materialize"):
        leased = materialize_snapshot(store, settings, snapshot, on_progress=progress)
    with leased as dataset, scratch_dir(settings, "evaluate-") as tmp:
        with timings.span("fetch_weights"):
            candidate_path = fetch_weights(store, settings, request.candidate, ".pt")
        plots_dir = tmp / "plots" if with_evidence else None
        scores = _score(
            registry, request, champion, dataset.data_yaml, candidate_path, tmp, progress,
            plots_dir,
        )  # fmt: skip
        evidence = None
        if plots_dir is not None and evidence_prefix is not None:
            with timings.span("evidence"):
                evidence = _evidence(
                    store, settings, request, scores, champion, tmp, evidence_prefix
                )
    cand = scores.candidate
    return EvaluateResult(
        model=request.model,
        class_names=list(snapshot.class_names),
        images=cand.images,
        instances=cand.instances,
        instances_per_class=cand.instances_per_class,
        candidate=cand.metrics,
        champion=scores.champion.metrics if scores.champion else None,
        champion_version=champion.version,
        ci=scores.ci,
        per_class_ci=scores.per_class_ci,
        comparison_note=champion.note,
        imgsz=request.imgsz,
        conf=request.options.conf,
        iou=request.options.iou,
        versions=library_versions(),
        evidence=evidence,
    )


def _evidence(
    store: ObjectStore,
    settings: Settings,
    request: EvaluateRequest,
    scores: _Scores,
    champion: _Champion,
    workdir: Path,
    prefix: str,
) -> Evidence:
    from activities.evaluation.evidence import build_evidence

    return build_evidence(
        store,
        EvidenceTarget(settings.runs_bucket, prefix),
        candidate=scores.candidate,
        # Per-image pictures draw boxes: detect's; the other tasks keep the plots only.
        champion=scores.champion if request.snapshot.task == "detect" else None,
        champion_version=champion.version,
        plots_dir=workdir / "plots",
        workdir=workdir / "pictures",
        options=request.options,
    )


def evidence_prefix_of(workflow_id: str, run_id: str, attempt: int) -> str:
    """Where an activity attempt stores its evidence: its own prefix, never overwritten.

    A second attempt (or a run of the same workflow id) writes elsewhere, so the digests an
    attempt returned always describe the objects under its keys.
    """
    return f"runs/{workflow_id}/evaluation/{run_id}-{attempt}/"


class EvaluationActivities:
    """The evaluate activity bound to one store (GPU workers); ``tracking``: MLflow (off by
    default) gets the test-split metrics."""

    def __init__(
        self, settings: Settings, store: ObjectStore, *, tracking: Tracking | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.tracking = tracking or Tracking(None)

    @activity.defn(name=names.EVALUATE)
    @translate_errors
    def evaluate(self, request: EvaluateRequest) -> EvaluateResult:
        """Candidate and production champion on the same test split, with a bootstrap CI."""
        info = activity.info()
        workflow_id = info.workflow_id or ""
        tracker = self.tracking.run(request.model, workflow_id, info.workflow_run_id or workflow_id)
        try:
            result = evaluate(
                self.store,
                self.settings,
                request,
                progress=heartbeat_progress(),
                evidence_prefix=evidence_prefix_of(
                    workflow_id or "no-workflow", info.workflow_run_id or "run", info.attempt
                ),
            )
        except SentinelError as exc:
            if not exc.retryable:  # the retrain ends here: so does its MLflow run
                tracker.tags({"sentinel.error": f"evaluation: {exc}"})
                tracker.finish("FAILED")
            raise
        tracker.metrics(evaluation_metrics(result))
        tracker.tags(
            {
                "sentinel.champion_version": result.champion_version or "none",
                "sentinel.comparison_note": result.comparison_note or "",
            }
        )
        return result
