"""The runs bucket: what finished runs leave under ``runs/{workflow_id}/``.

Per folder, Temporal is asked about the workflow; a running one is left alone entirely. Of a
finished one (or one Temporal no longer knows):

* ``checkpoints/``: every checkpoint of a completed run; of a failed or canceled one all but
  the newest ``Policy.failed_checkpoints`` (kept to investigate or resume by hand); a
  checkpoint's signed sidecar (``….pt.sig.json``) goes and stays with it;
* ``control/``: every control object (a stop-early request is consumed when its run ends);
* ``export/``: an export whose content the registry holds (a version's ``model.onnx``, by
  sha256) at once; one that was never published after ``Policy.export_age``.

Only objects written before the run closed go: ``retrain-{model}`` is the id of every retrain
of a model, so anything newer belongs to a later run. When Temporal does not know the workflow
(never a workflow here, or its history already deleted), the grace period stands in for the
close time. The workflow is described again right before deleting; if a run started meanwhile
the folder waits for the next sweep. ``best.pt``, ``last.pt`` and ``results.csv`` (one set
per workflow id, overwritten by its next run) are not touched.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from activities.infra.heartbeat import Progress
from activities.infra.signing import SIDECAR_SUFFIX
from activities.infra.storage import ObjectInfo, ObjectStore
from activities.infra.workflow_runs import RunState, WorkflowRuns
from activities.retention.sweep import Policy, Sweep

RUNS = "runs/"
CHECKPOINTS, CONTROL, EXPORT = "checkpoints/", "control/", "export/"
NEVER = datetime.min.replace(tzinfo=UTC)


def plan_run(
    folder: str,
    objects: list[ObjectInfo],
    state: RunState | None,
    policy: Policy,
    published: Callable[[ObjectInfo], bool],
) -> dict[str, list[ObjectInfo]]:
    """What to delete of one finished run's folder, per category (``state``: its last run)."""
    closed = state.close_time if state is not None else None

    def of_the_ended_run(info: ObjectInfo) -> bool:
        if closed is not None:
            return info.modified is not None and info.modified <= closed
        return policy.older_than(info, policy.grace)

    def under(sub: str) -> list[ObjectInfo]:
        return [info for info in objects if info.key.startswith(folder + sub)]

    files = [i for i in under(CHECKPOINTS) if not i.key.endswith(SIDECAR_SUFFIX)]
    newest_first = sorted(files, key=lambda i: (i.modified or NEVER, i.key))[::-1]
    keep = 0 if state is not None and state.completed else policy.failed_checkpoints
    dropped = [i for i in newest_first[keep:] if of_the_ended_run(i)]
    return {
        "checkpoints": dropped + _sidecars_of(under(CHECKPOINTS), files, dropped, of_the_ended_run),
        "controls": [i for i in under(CONTROL) if of_the_ended_run(i)],
        "exports": [
            i
            for i in under(EXPORT)
            if of_the_ended_run(i) and (policy.older_than(i, policy.export_age) or published(i))
        ],
    }


def _sidecars_of(
    listed: list[ObjectInfo],
    files: list[ObjectInfo],
    dropped: list[ObjectInfo],
    ended: Callable[[ObjectInfo], bool],
) -> list[ObjectInfo]:
    """Sidecars that go: those of dropped checkpoints, and orphans of the ended run (a kept
    checkpoint keeps its sidecar, which a resume by hand needs)."""
    going, present = {i.key for i in dropped}, {i.key for i in files}
    return [
        i
        for i in listed
        if i.key.endswith(SIDECAR_SUFFIX)
        and (
            (base := i.key.removesuffix(SIDECAR_SUFFIX)) in going
            or (base not in present and ended(i))
        )
    ]


def sweep_runs(
    sweep: Sweep,
    store: ObjectStore,
    bucket: str,
    runs: WorkflowRuns,
    policy: Policy,
    published_sha256s: Callable[[], set[str]],
    progress: Progress,
) -> None:
    """Sweep every ``runs/{workflow_id}/`` folder of ``bucket`` (see the module)."""

    def published(info: ObjectInfo) -> bool:
        recorded = store.stat(bucket, info.key)
        return recorded is not None and recorded.sha256 in published_sha256s()

    for folder in store.list_folders(bucket, RUNS):
        sweep.runs_seen += 1
        progress("runs", sweep.runs_seen, 0)
        workflow_id = folder[len(RUNS) : -1]
        state = runs.describe(workflow_id)
        if state is not None and state.running:
            sweep.skip_running(workflow_id)
            continue
        plan = plan_run(folder, list(store.list(bucket, folder)), state, policy, published)
        if not any(plan.values()):
            continue
        if runs.describe(workflow_id) != state:  # a new run started since: the next sweep
            sweep.skip_running(workflow_id)
            continue
        for category, doomed in plan.items():
            sweep.delete(bucket, category, doomed)
