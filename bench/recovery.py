"""Benchmark (not a test): what a dead training worker and a cancel cost.

Starts its own Temporal dev server and S3 server (``workers.dev.stack``), uploads a small
synthetic dataset, assembles a snapshot, and runs the ``train`` activity through the test
workflow (``tests/helpers/stage_workflows.py``) on ``python -m workers --queues gpu``
subprocesses, each with its own cache directory (as on separate nodes):

1. **kill**: worker A trains; a seeded fraction of an epoch after the checkpoint of a seeded
   epoch is in S3, A is SIGKILLed.
   Worker B (started as an idle standby once A holds the task) picks up the retry. Measured:

   * ``epochs_rerun_after_kill``: epochs A had completed (rows of its local ``results.csv``)
     minus the epoch B resumed from: full epochs trained twice (a partial epoch in progress at
     the kill is lost too, and not counted);
   * ``detect_seconds``: kill -> B starts the retry attempt (Temporal noticed the missing
     heartbeats and rescheduled), against ``heartbeat_timeout_seconds``;
   * ``resume_seconds``: kill -> B's training loop runs again (dataset cached, checkpoint
     downloaded and verified, Ultralytics set up).

2. **cancel**: a second run on B with a 60 s heartbeat timeout is cancelled after its second
   checkpoint; ``cancel_latency_seconds`` is cancel request -> workflow closed as CANCELED (the
   workflow waits for the activity to acknowledge, so this includes stopping training).

3. **SIGTERM**: a third run (60 s heartbeat timeout) trains on worker C while D stands by;
   C gets SIGTERM after the second checkpoint. ``sigterm_handover_seconds`` is SIGTERM -> D
   starts the retried attempt: C checkpoints and hands over itself, far below the heartbeat
   timeout (the tests check the handover happened that way, this measures how fast).

Runs 1-3 take a checkpoint at every epoch end (``SENTINEL_CHECKPOINT_INTERVAL_SECONDS=0``).

4. **long epoch** (:mod:`bench._recovery_long`): epochs of a minute or more, checkpoints every
   ``--interval`` seconds, also mid-epoch; the worker is SIGKILLed at 80% of an epoch.
   ``seconds_rerun_after_kill`` (training done twice) next to
   ``seconds_rerun_after_kill_epoch_checkpoints`` (what epoch-end checkpoints alone lose),
   and the cost of one mid-epoch checkpoint.

The last lines are machine-readable::

    epochs_rerun_after_kill=<n>
    detect_seconds=<s>
    heartbeat_timeout_seconds=<s>
    cancel_latency_seconds=<s>
    sigterm_handover_seconds=<s>
    seconds_rerun_after_kill=<s>
    seconds_rerun_after_kill_epoch_checkpoints=<s>

Run: ``.venv/bin/python bench/recovery.py`` (about ten minutes on 2 loaded CPU cores;
``--skip-long`` for runs 1-3 alone, about three; ``--only-long`` for run 4 alone). About 400
lines on purpose: four measured phases sharing one stack, one snapshot and the worker
processes (run 4's measurement itself is in ``bench/_recovery_long.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import platform
import random
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from temporalio.api.enums.v1 import PendingActivityState  # noqa: E402
from temporalio.client import (  # noqa: E402
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
)
from temporalio.worker import Worker  # noqa: E402

from activities.contracts.training import Hyperparameters, TrainRequest  # noqa: E402
from activities.infra.connection import connect  # noqa: E402
from activities.infra.settings import Settings  # noqa: E402
from activities.infra.storage import ObjectStore  # noqa: E402
from activities.training.checkpoints import checkpoint_prefix, epoch_of_key  # noqa: E402
from activities.training.control import ControlActivities  # noqa: E402
from bench._recovery_long import long_epoch_case  # noqa: E402
from bench._stack import bench_stack, cpu_model  # noqa: E402
from tests.helpers.history import serving  # noqa: E402
from tests.helpers.polling import eventually  # noqa: E402
from tests.helpers.stage_workflows import TrainOnlyParams, TrainOnlyWorkflow  # noqa: E402
from tests.helpers.training import heartbeat_details, make_snapshot  # noqa: E402

STARTED = PendingActivityState.PENDING_ACTIVITY_STATE_STARTED


class GpuWorker:
    """``python -m workers --queues gpu`` with its own cache dir (a separate node)."""

    def __init__(self, name: str, root: Path, env: dict[str, str] | None = None) -> None:
        self.cache = root / f"node-{name}"
        self.log_path = root / f"worker-{name}.log"
        env = {
            **os.environ, "SENTINEL_CHECKPOINT_INTERVAL_SECONDS": "0", **(env or {}),
            "SENTINEL_CACHE_DIR": str(self.cache), "PYTHONUNBUFFERED": "1",
        }  # fmt: skip
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workers", "--queues", "gpu"],
            cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


async def _poll(check: Callable[[], Awaitable[object]], what: str, timeout: float = 180.0) -> None:
    """Wait until ``check`` holds, checking every 50 ms (the measurements' resolution)."""
    await eventually(check, timeout=timeout, interval=0.05, message=f"waiting for {what}")


async def _pending(handle: WorkflowHandle) -> Any:
    pending = (await handle.describe()).raw_description.pending_activities
    return pending[0] if pending else None


def _newest_checkpoint(store: ObjectStore, settings: Settings, workflow_id: str) -> int:
    prefix = checkpoint_prefix(f"runs/{workflow_id}/")
    return max(
        (epoch_of_key(i.key) or 0 for i in store.list(settings.runs_bucket, prefix)), default=0
    )


async def _start(client: Client, settings: Settings, request: TrainRequest) -> WorkflowHandle:
    return await client.start_workflow(
        TrainOnlyWorkflow.run,
        TrainOnlyParams(
            request=request,
            gpu_queue=settings.gpu_task_queue,
            cpu_queue=settings.cpu_task_queue,
            max_attempts=5,
        ),
        id=f"bench-recovery-{uuid.uuid4().hex[:8]}",
        task_queue=settings.cpu_task_queue,
        execution_timeout=timedelta(minutes=20),
    )


async def _sigterm_handover(
    client: Client, settings: Settings, store: ObjectStore, request: TrainRequest, root: Path
) -> float:
    """Run 3: SIGTERM the worker training it; seconds until the standby runs attempt 2."""
    node_c, node_d = GpuWorker("c", root), None
    try:
        handle = await _start(client, settings, request)

        async def checkpoints(epoch: int) -> bool:
            return _newest_checkpoint(store, settings, handle.id) >= epoch

        await _poll(lambda: checkpoints(1), "run 3's first checkpoint", timeout=300)
        node_d = GpuWorker("d", root)
        identity = f"{node_d.proc.pid}@{socket.gethostname()}"
        await _poll(lambda: serving(client, settings.gpu_task_queue, identity), "standby D")
        await _poll(lambda: checkpoints(2), "run 3's second checkpoint")
        asked = time.monotonic()
        node_c.proc.terminate()

        async def retry_started() -> bool:
            pending = await _pending(handle)
            return pending is not None and pending.attempt >= 2 and pending.state == STARTED

        await _poll(retry_started, "the handover")
        handover = time.monotonic() - asked
        result = await handle.result()
        print(f"run 3 {handle.id}: attempt {result.attempt} on D {handover:.2f}s after SIGTERM")
        return handover
    finally:
        node_c.stop()
        if node_d is not None:
            node_d.stop()


async def measure(args: argparse.Namespace, root: Path, settings: Settings) -> dict[str, float]:
    store = ObjectStore.from_settings(settings)
    snapshot = make_snapshot(settings, store, count=args.images, seed=args.seed)
    rng = random.Random(args.seed)
    kill_epoch, kill_fraction = rng.randint(2, args.epochs - 4), rng.random()
    hp = Hyperparameters(
        epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, seed=args.seed, device="cpu",
        extra={"mosaic": 0.0},
    )  # fmt: skip
    client = await connect(settings)
    control = ControlActivities(settings, store)
    worker = Worker(
        client,
        task_queue=settings.cpu_task_queue,
        workflows=[TrainOnlyWorkflow],
        activities=[control.write_control],
        activity_executor=ThreadPoolExecutor(2),
    )
    node_a = GpuWorker("a", root)
    node_b: GpuWorker | None = None
    try:
        async with worker:
            # ---------------------------------------------------------------- kill
            request = TrainRequest(
                snapshot=snapshot, model_name="shapes", hyperparameters=hp,
                heartbeat_timeout_seconds=args.heartbeat_timeout,
            )  # fmt: skip
            handle = await _start(client, settings, request)
            print(f"run 1 {handle.id}: waiting for worker A to start training")

            async def started_on_a() -> bool:
                pending = await _pending(handle)
                return pending is not None and pending.state == STARTED

            await _poll(started_on_a, "attempt 1 to start", timeout=300)
            node_b = GpuWorker("b", root)  # idle standby: A already holds the task

            async def reached(epoch: int) -> bool:
                return _newest_checkpoint(store, settings, handle.id) >= epoch

            await _poll(lambda: reached(kill_epoch - 1), f"checkpoint of epoch {kill_epoch - 1}")
            before = time.monotonic()
            await _poll(lambda: reached(kill_epoch), f"checkpoint of epoch {kill_epoch}")
            epoch_seconds = time.monotonic() - before
            await asyncio.sleep(kill_fraction * epoch_seconds)  # somewhere in the next epoch
            node_a.kill()
            killed = time.monotonic()
            csv_a = node_a.cache / "runs" / handle.id / "attempt-1" / "train" / "results.csv"
            with csv_a.open() as fh:
                completed_a = sum(1 for _ in csv.DictReader(fh))
            print(
                f"SIGKILLed worker A {kill_fraction:.2f} x {epoch_seconds:.2f}s after the "
                f"checkpoint of epoch {kill_epoch} ({completed_a} epochs done)"
            )

            async def retry_started() -> bool:
                pending = await _pending(handle)
                return pending is not None and pending.attempt >= 2 and pending.state == STARTED

            await _poll(retry_started, "the retry to start", timeout=args.heartbeat_timeout + 120)
            detect = time.monotonic() - killed

            async def training_again() -> bool:
                details = heartbeat_details(await handle.describe()) or {}
                return details.get("attempt", 0) >= 2 and details.get("phase") == "train"

            await _poll(training_again, "the retry's training loop", timeout=180)
            resume = time.monotonic() - killed
            result = await handle.result()
            rerun = completed_a - (result.resumed_from_epoch or 0)
            print(
                f"run 1: attempt {result.attempt} resumed from epoch {result.resumed_from_epoch}, "
                f"{result.epochs_done}/{result.epochs_requested} epochs, "
                f"detect {detect:.2f}s, training again {resume:.2f}s after the kill"
            )
            # ---------------------------------------------------------------- cancel
            request = request.model_copy(update={"heartbeat_timeout_seconds": 60.0})
            handle = await _start(client, settings, request)

            async def two_checkpoints() -> bool:
                return _newest_checkpoint(store, settings, handle.id) >= 2

            await _poll(two_checkpoints, "run 2's second checkpoint")
            asked = time.monotonic()
            await handle.cancel()
            with contextlib.suppress(WorkflowFailureError):
                await handle.result()
            cancel = time.monotonic() - asked
            status = (await handle.describe()).status
            assert status == WorkflowExecutionStatus.CANCELED, status
            print(f"run 2 {handle.id}: CANCELED {cancel:.2f}s after the cancel request")
            assert node_b is not None
            node_b.stop()  # run 3 has its own two workers
            handover = await _sigterm_handover(client, settings, store, request, root)
            long = {} if args.skip_long else await long_epoch_case(
                client, settings, store, args,
                start=lambda r: _start(client, settings, r),
                worker=lambda name, env: GpuWorker(name, root, env),
                poll=_poll,
            )  # fmt: skip
    finally:
        node_a.kill()
        node_a.stop()
        if node_b is not None:
            node_b.stop()
    return {
        "kill_epoch": kill_epoch,
        "kill_fraction": kill_fraction,
        "resume_seconds": resume,
        "epochs_rerun_after_kill": rerun,
        "detect_seconds": detect,
        "heartbeat_timeout_seconds": args.heartbeat_timeout,
        "cancel_latency_seconds": cancel,
        "sigterm_handover_seconds": handover,
        **long,
    }


async def measure_long(args: argparse.Namespace, root: Path, settings: Settings) -> dict:
    """The long-epoch case alone (``--only-long``)."""
    store = ObjectStore.from_settings(settings)
    client = await connect(settings)
    control = ControlActivities(settings, store)
    async with Worker(
        client, task_queue=settings.cpu_task_queue, workflows=[TrainOnlyWorkflow],
        activities=[control.write_control], activity_executor=ThreadPoolExecutor(2),
    ):  # fmt: skip
        return await long_epoch_case(
            client, settings, store, args,
            start=lambda r: _start(client, settings, r),
            worker=lambda name, env: GpuWorker(name, root, env),
            poll=_poll,
        )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=4, help="picks the kill epoch")
    parser.add_argument("--epochs", type=int, default=14)
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--imgsz", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--heartbeat-timeout", type=float, default=10.0)
    parser.add_argument("--skip-long", action="store_true", help="skip the long-epoch case")
    parser.add_argument("--only-long", action="store_true", help="the long-epoch case alone")
    parser.add_argument(
        "--interval",
        type=float,
        default=10.0,
        help="checkpoint interval (s) of the long-epoch case",
    )
    parser.add_argument("--long-images", type=int, default=800, help="long case: images")
    parser.add_argument("--long-image-px", type=int, default=320, help="long case: image px")
    parser.add_argument("--long-imgsz", type=int, default=320, help="long case: imgsz")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    with bench_stack("recovery", keep=args.keep) as (root, settings, _store):
        figures = asyncio.run(measure_long(args, root, settings) if args.only_long
                              else measure(args, root, settings))  # fmt: skip
    if args.only_long:
        figures.update(
            dict.fromkeys(
                (
                    "kill_fraction",
                    "kill_epoch",
                    "resume_seconds",
                    "epochs_rerun_after_kill",
                    "detect_seconds",
                    "heartbeat_timeout_seconds",
                    "cancel_latency_seconds",
                    "sigterm_handover_seconds",
                ),
                float("nan"),
            )
        )
    print(
        f"machine: nproc={os.cpu_count()} cpu={cpu_model()!r} python={platform.python_version()}"
        f" | {args.images} images, imgsz {args.imgsz}, batch {args.batch}, {args.epochs} epochs,"
        f" seed {args.seed} -> kill {figures['kill_fraction']:.2f} epoch after checkpoint"
        f" {figures['kill_epoch']}"
    )
    print(f"resume_seconds={figures['resume_seconds']:.2f}")
    print(f"epochs_rerun_after_kill={figures['epochs_rerun_after_kill']}")
    print(f"detect_seconds={figures['detect_seconds']:.2f}")
    print(f"heartbeat_timeout_seconds={figures['heartbeat_timeout_seconds']:g}")
    print(f"cancel_latency_seconds={figures['cancel_latency_seconds']:.2f}")
    print(f"sigterm_handover_seconds={figures['sigterm_handover_seconds']:.2f}")
    if args.only_long or not args.skip_long:
        print(f"long case: interval {args.interval:g}s, {args.long_images} images at "
              f"{args.long_imgsz}px, batch {args.batch}")  # fmt: skip
        for name in (
            "long_epoch_seconds",
            "checkpoint_copy_seconds",
            "checkpoint_serialise_seconds",
            "checkpoint_upload_seconds",
            "checkpoint_mb",
            "checkpoints_mid_epoch",
            "seconds_rerun_after_kill_epoch_checkpoints",
            "seconds_rerun_after_kill",
        ):
            print(f"{name}={figures[name]:.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
