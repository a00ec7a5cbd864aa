"""Benchmark (not a test): what a slow MLflow tracking server costs a training.

Starts its own S3 server (the tests' stack), a real ``mlflow server`` and, in front of it, an
HTTP proxy that answers every call 5 s late (``tests/helpers/slow_links.py``). Uploads a
synthetic dataset, assembles a snapshot, then runs the real ``train`` activity in this process
(``ActivityEnvironment``, the same code a GPU worker runs) side by side:

* ``off``: tracking off (no ``SENTINEL_MLFLOW_TRACKING_URI``), as before this feature;
* ``slow``: tracking on, through the 5 s proxy: parameters, lineage and one record per epoch
  are enqueued from the training thread and sent by the tracking thread.

One warm-up run first (dataset cache, imports, the MLflow client's import in the tracking
thread, as at a worker's start-up), then ``--pairs`` pairs, alternating which side goes first.
Per pair: ``slow / off`` of the activity's wall time; the result is the median over pairs
(and the process CPU seconds of both sides). On a shared machine the wall-time ratio is as
noisy as the machine; the tracking thread's own CPU time during a run (``Sink.cpu_seconds``)
and the time the training thread spends in tracking calls (it only enqueues, timed here)
bound what tracking can take from a training, whatever the load.
After the last run the tracking thread is given time to send its backlog, which shows that
nothing was lost, only late.

The last lines are machine-readable::

    slow_mlflow_overhead_ratio=<x>       median over pairs of slow / off wall time
    slow_mlflow_cpu_share=<x>            tracking thread CPU / tracked trainings' wall time
    slow_mlflow_enqueue_share=<x>        training thread time in tracking calls / same
    slow_mlflow_delay_seconds=<s>

Run: ``.venv/bin/python bench/tracking_overhead.py`` (about 15 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import resource
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.testing import ActivityEnvironment

from activities.contracts.dataset import SnapshotRef
from activities.contracts.training import Hyperparameters, TrainRequest
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.infra.yolo_env import bootstrap_offline
from activities.tracking import RunTracker, Tracking
from activities.tracking.session import RunIdentity
from activities.tracking.tracker import RunOperation
from activities.training import TrainingActivities
from bench._stack import bench_stack, cpu_model
from tests.helpers.slow_links import DelayingHttpProxy
from tests.helpers.stack import start_mlflow
from tests.helpers.training import make_snapshot


class TimedTracking(Tracking):
    """Tracking whose run trackers time every call made from the training thread (enqueue)."""

    def __init__(self, tracking: Tracking) -> None:
        super().__init__(tracking.sink)
        self.enqueue_seconds = 0.0
        self.enqueues = 0
        self.slowest_enqueue = 0.0

    def run(self, model: str, workflow_id: str, workflow_run_id: str) -> RunTracker:
        owner = self

        class Timed(RunTracker):
            def call(self, what: str, operation: RunOperation) -> None:
                started = time.perf_counter()
                super().call(what, operation)
                spent = time.perf_counter() - started
                owner.enqueue_seconds += spent
                owner.enqueues += 1
                owner.slowest_enqueue = max(owner.slowest_enqueue, spent)

        return Timed(self.sink, RunIdentity(model, workflow_id, workflow_run_id))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _train(
    settings: Settings, store: ObjectStore, snapshot: SnapshotRef, tracking: Tracking, epochs: int
) -> tuple[float, float, float, str | None]:
    """One ``train`` activity: (wall s, process CPU s, tracking thread CPU s, status line)."""
    request = TrainRequest(
        snapshot=snapshot,
        model_name="bench-tracking",
        hyperparameters=Hyperparameters(
            epochs=epochs, imgsz=96, batch=8, seed=0, device="cpu", workers=0,
            extra={"mosaic": 0.0, "nbs": 8, "warmup_epochs": 1.0},
        ),
    )  # fmt: skip
    env = ActivityEnvironment()
    run_id = uuid.uuid4().hex
    env.info = dataclasses.replace(
        env.info, workflow_id=f"retrain-bench-{run_id[:8]}", workflow_run_id=run_id
    )
    activities = TrainingActivities(settings, store, tracking=tracking)
    sender = tracking.sink.cpu_seconds if tracking.sink else 0.0
    started, cpu = time.perf_counter(), _cpu_seconds()
    env.run(activities.train, request)
    wall, used = time.perf_counter() - started, _cpu_seconds() - cpu
    sent = (tracking.sink.cpu_seconds if tracking.sink else 0.0) - sender
    return wall, used, sent, tracking.status_line(run_id)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--delay", type=float, default=5.0, help="seconds per MLflow call")
    parser.add_argument("--quick", action="store_true", help="2 pairs of 3 epochs")
    args = parser.parse_args()
    if args.quick:
        args.pairs, args.epochs = 2, 3
    os.environ.setdefault("YOLO_VERBOSE", "False")
    with bench_stack("tracking") as (root, settings, store):
        bootstrap_offline()
        mlflow = start_mlflow(root / "mlflow", settings.s3_endpoint, store,
                              access_key="bench", secret_key="bench-secret")  # fmt: skip
        proxy = DelayingHttpProxy(mlflow.url, args.delay).start()
        try:
            snapshot = make_snapshot(settings, store, count=args.images, seed=3)
            off = Tracking(None)
            slow = TimedTracking(
                Tracking.from_settings(
                    settings.model_copy(update={"mlflow_tracking_uri": proxy.url})
                )
            )
            print(f"warm-up ({args.epochs} epochs, tracking off) ...", flush=True)
            _train(settings, store, snapshot, off, args.epochs)
            rows: list[tuple[float, float, float, float, float]] = []
            for pair in range(args.pairs):
                order = ("off", "slow") if pair % 2 == 0 else ("slow", "off")
                measured = {}
                for side in order:
                    measured[side] = _train(
                        settings, store, snapshot, off if side == "off" else slow, args.epochs
                    )
                (w_off, c_off, _, _), (w_slow, c_slow, sender, line) = (
                    measured["off"], measured["slow"],
                )  # fmt: skip
                rows.append((w_off, w_slow, c_off, c_slow, sender))
                print(
                    f"pair {pair + 1}: off {w_off:.1f}s, slow MLflow {w_slow:.1f}s "
                    f"(x{w_slow / w_off:.3f}), tracking thread CPU {sender:.3f}s; "
                    f"tracking after the run: {line or 'all sent'}",
                    flush=True,
                )
            drain_started = time.perf_counter()
            assert slow.sink is not None
            drained = slow.sink.flush(timeout=1800)
            drain = time.perf_counter() - drain_started
            sender_total = slow.sink.cpu_seconds
        finally:
            proxy.stop()
            mlflow.stop()
    ratios = [w_slow / w_off for w_off, w_slow, *_ in rows]
    cpu_ratios = [c_slow / c_off for _, _, c_off, c_slow, _ in rows]
    # What tracking can take from a training at most: the tracking thread's CPU time, as a
    # share of the training's wall time (the training thread itself only enqueues: us). A
    # send's CPU is counted when it ends, so the fair figure is the whole session's: every
    # send (backlog included) against the wall time of the tracked trainings.
    share = sender_total / sum(w_slow for _, w_slow, *_ in rows)
    print()
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, {platform.system()}")
    print(f"date: {datetime.date.today().isoformat()}")
    print(f"training: {args.images} images, imgsz 96, {args.epochs} epochs, CPU")
    print(f"MLflow: every call answered {args.delay:.0f}s late; {proxy.requests} calls")
    print("| pair | off (s) | slow MLflow (s) | ratio | CPU off (s) | CPU slow (s) | "
          "tracking thread CPU (s) |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for index, (w_off, w_slow, c_off, c_slow, sender) in enumerate(rows, start=1):
        print(f"| {index} | {w_off:.1f} | {w_slow:.1f} | {w_slow / w_off:.3f} | "
              f"{c_off:.1f} | {c_slow:.1f} | {sender:.3f} |")  # fmt: skip
    print(f"median wall ratio {statistics.median(ratios):.3f}, "
          f"median CPU ratio {statistics.median(cpu_ratios):.3f}, "
          f"tracking thread CPU {sender_total:.2f}s in all = {share:.4%} of the tracked "
          f"trainings' wall time")  # fmt: skip
    enqueue_share = slow.enqueue_seconds / sum(w_slow for _, w_slow, *_ in rows)
    print(f"training thread: {slow.enqueues} tracking calls, {slow.enqueue_seconds * 1000:.1f} ms "
          f"in all ({enqueue_share:.5%} of the tracked trainings' wall time), slowest "
          f"{slow.slowest_enqueue * 1e6:.0f} us")  # fmt: skip
    print(f"backlog after the last run sent in {drain:.0f}s (complete: {drained})")
    print(f"slow_mlflow_overhead_ratio={statistics.median(ratios):.3f}")
    print(f"slow_mlflow_cpu_share={share:.5f}")
    print(f"slow_mlflow_enqueue_share={enqueue_share:.6f}")
    print(f"slow_mlflow_delay_seconds={args.delay:g}")
    return 0 if drained else 1


if __name__ == "__main__":
    sys.exit(main())
