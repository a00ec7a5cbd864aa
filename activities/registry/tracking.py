"""What the registry tells MLflow: the published version, and the registry itself mirrored.

Everything here is enqueued (:mod:`activities.tracking`); the objects (report, results) are
read from our registry in the tracking thread, when they are sent, so a publish never waits
for MLflow. Our registry is the source of truth: :func:`mirror_state` is what MLflow's model
registry is made to match after every publish, promote and rollback.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from activities.contracts.registry import PublishRequest, PublishResult
from activities.registry import layout
from activities.registry.core import Registry
from activities.tracking import MirroredVersion, RegistryState, Tracking
from activities.tracking.records import csv_epochs

log = logging.getLogger(__name__)


def mirror_state(registry: Registry, model: str, up_to: int | None = None) -> RegistryState:
    """Our registry's versions of ``model`` (with the retrain that made each) and production.

    ``up_to``: leave newer versions out (a publish mirrors up to its own version, so a newer
    one is registered by its own publish, after the records that create its MLflow run).
    """
    scan = registry.scan(model)
    versions = []
    for version in sorted(scan.versions):
        if up_to is not None and version > up_to:
            continue
        meta = registry.metadata(model, version)
        source = f"s3://{registry.bucket}/{layout.version_prefix(model, version)}"
        versions.append(MirroredVersion(version, meta.run_id, source))
    return RegistryState(model, tuple(versions), registry.production_version(model, scan))


def track_publish(
    tracking: Tracking, registry: Registry, request: PublishRequest, result: PublishResult
) -> None:
    """Tags, artifacts and missing epochs of the retrain's MLflow run; the run ends FINISHED;
    then MLflow's model registry is made to match ours."""
    if not tracking.enabled:
        return
    tracker = tracking.run(request.model, request.workflow_id, request.run_id)
    gate = request.gate
    tracker.tags(
        {
            "mlflow.runName": f"{request.model} v{result.version}",  # the run, renamed
            "sentinel.version": result.version,
            "sentinel.promoted": str(result.promoted).lower(),
            "sentinel.decision": result.reason,
            "sentinel.gate.promote": str(gate.promote).lower(),
            "sentinel.gate.reason": gate.reason,
            "sentinel.champion_version": request.evaluation.champion_version or "none",
            "sentinel.production_version": result.production_version or "none",
            "sentinel.parity_passed": str(request.export.parity.passed).lower(),
        }
    )
    artifacts = dict(result.artifacts)

    def upload_artifacts(session: Any, run: str) -> None:
        for name in ("report.md", "results.csv", layout.METADATA):
            if name in artifacts:
                data = registry.store.get_bytes(registry.bucket, artifacts[name])
                session.log_bytes(run, f"registry/{name}", data)

    def results_and_plot(session: Any, run: str) -> None:
        key = artifacts.get("results.csv")
        if key is None:
            return
        text = registry.store.get_bytes(registry.bucket, key).decode()
        epochs = csv_epochs(text)  # empty for the evaluation CSV of a run without training
        tracker.backfill_now(session, run, epochs)  # epochs lost with a killed worker
        plot = _results_plot(text) if epochs else None
        if plot is not None:
            session.log_bytes(run, "plots/results.png", plot)

    tracker.call("registry artifacts", upload_artifacts)
    tracker.call("results plot", results_and_plot)
    tracker.finish("FINISHED")
    tracking.mirror_registry(
        request.model, lambda: mirror_state(registry, request.model, up_to=result.version)
    )


def _results_plot(results_csv: str) -> bytes | None:
    """Ultralytics' own ``results.png`` of a ``results.csv`` (None when it cannot be drawn)."""
    try:
        from activities.infra.yolo_env import bootstrap_offline

        bootstrap_offline()
        import matplotlib

        matplotlib.use("Agg")  # no display; drawing happens in the tracking thread
        from ultralytics.utils.plotting import plot_results

        with tempfile.TemporaryDirectory(prefix="sentinel-plot-") as tmp:
            csv_path = Path(tmp) / "results.csv"
            csv_path.write_text(results_csv)
            plot_results(file=csv_path)
            png = Path(tmp) / "results.png"
            return png.read_bytes() if png.exists() else None
    except Exception as exc:  # a plot is a nicety: the run's numbers are logged anyway
        log.info("results plot not drawn: %s: %s", type(exc).__name__, exc)
        return None
