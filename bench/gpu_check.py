"""GPU readiness check (not a test): the GPU path on one CUDA machine, in under 8 minutes.

On a machine with CUDA, in order (each step bounded, a failed step reported and the next run):

1. **training tests on device 0, AMP on**: ``tests/integration/test_training.py`` (normal run,
   SIGKILL resume, SIGTERM handover) with ``SENTINEL_TEST_DEVICE=0`` (AMP is on for any CUDA
   device: ``activities/training/args.py``);
2. **the GPU image's entry point**: ``python -m workers --check`` and ``python -m workers`` with
   ``SENTINEL_WORKER_QUEUES=gpu``, as ``deploy/docker/Dockerfile.gpu`` runs them (without
   ``tini`` and the image); that worker serves the next two steps;
3. **GPU throughput**: the same snapshot trained by bare Ultralytics and by
   ``TrainOnlyWorkflow`` on that worker, images/s of each from its ``results.csv`` (training
   and per-epoch validation, the same for both), and their ratio (goal >= 0.98);
4. **a real out-of-memory**: ``yolov8x.yaml`` with a batch far too big for the card: the batch
   is halved (by Ultralytics in the first epoch; by us, across a Temporal retry, when the
   error escapes it) until it fits; if the run is still on its first attempt then, its worker
   gets SIGTERM and a fresh one must resume at the halved batch. The batch that fits, the
   final one, the attempt and why the previous attempt ended are read from the run.

The last lines are machine-readable, one ``key=value`` per figure (``*_error=`` when a step
failed). Without CUDA: says so, prints ``cuda_available=0`` and exits 0.

Run: ``.venv/bin/python bench/gpu_check.py`` (``--help`` for sizes).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FIGURES: dict[str, object] = {}


def emit(key: str, value: object) -> None:
    """Record a figure (printed again, all together, at the end)."""
    FIGURES[key] = value
    print(f"{key}={value}", flush=True)


def _train_images_per_second(results_csv: str, images: int) -> float:
    rows = list(csv.DictReader(io.StringIO(results_csv)))
    seconds = float(rows[-1]["time"])  # cumulative seconds of the run, as Ultralytics logs it
    return images * len(rows) / seconds


def training_tests(timeout: float) -> None:
    env = {**os.environ, "SENTINEL_TEST_DEVICE": "0"}
    started = time.monotonic()
    tests = "normal_run or sigkilled or sigterm"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "tests/integration/test_training.py",
         "-k", tests, "-p", "no:cacheprovider"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    print(done.stdout[-2000:])
    emit("gpu_training_tests_passed", int(done.returncode == 0))
    emit("gpu_training_tests_seconds", round(time.monotonic() - started, 1))


def bare_ultralytics(data_yaml: Path, args: argparse.Namespace, out: Path) -> str:
    """Bare Ultralytics on the materialised snapshot; its results.csv."""
    from activities.infra.yolo_env import bootstrap_offline

    bootstrap_offline()
    from ultralytics import YOLO

    YOLO("yolov8n.yaml").train(
        data=str(data_yaml), epochs=args.epochs, imgsz=args.imgsz, batch=args.batch,
        device=args.device, amp=args.device != "cpu", workers=args.workers, seed=1,
        plots=False, verbose=False, mosaic=0.0,
        project=str(out), name="bare", exist_ok=True,
    )  # fmt: skip
    return (out / "bare" / "results.csv").read_text()


class EntryPoint:
    """``python -m workers`` as the GPU image runs it (``SENTINEL_WORKER_QUEUES=gpu``)."""

    def __init__(self, root: Path) -> None:
        self.env = {**os.environ, "SENTINEL_WORKER_QUEUES": "gpu",
                    "SENTINEL_CACHE_DIR": str(root / "gpu")}  # fmt: skip
        self.log = (root / "gpu-worker.log").open("ab")
        self.proc: subprocess.Popen[bytes] | None = None

    def check(self) -> bool:
        done = subprocess.run(
            [sys.executable, "-m", "workers", "--check"],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            timeout=60,
            check=False,
        )
        return done.returncode == 0  # fmt: skip

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "workers"], cwd=REPO, env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT)  # fmt: skip

    def terminate(self) -> int | None:
        """SIGTERM, as the kubelet sends it; the exit code (None if it had to be killed)."""
        if self.proc is None:
            return None
        self.proc.terminate()
        try:
            return self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None


async def workflow_runs(args: argparse.Namespace, root: Path, settings: Any, store: Any) -> None:
    from temporalio.worker import Worker

    from activities.contracts.training import Hyperparameters, TrainRequest
    from activities.infra.connection import connect
    from activities.training.control import ControlActivities
    from tests.helpers.stage_workflows import TrainOnlyParams, TrainOnlyWorkflow
    from tests.helpers.training import make_snapshot

    snapshot = make_snapshot(settings, store, count=args.images, seed=5, size=args.image_px)
    client = await connect(settings)
    entry = EntryPoint(root)
    emit("gpu_entrypoint_check_ok", int(entry.check()))
    entry.start()
    control = ControlActivities(settings, store)
    try:
        async with Worker(client, task_queue=settings.cpu_task_queue,
                          workflows=[TrainOnlyWorkflow], activities=[control.write_control],
                          activity_executor=ThreadPoolExecutor(2)):  # fmt: skip

            async def run(request: TrainRequest) -> Any:
                return await client.start_workflow(
                    TrainOnlyWorkflow.run,
                    TrainOnlyParams(request=request, gpu_queue=settings.gpu_task_queue,
                                    cpu_queue=settings.cpu_task_queue, max_attempts=4),
                    id=f"gpu-check-{uuid.uuid4().hex[:8]}", task_queue=settings.cpu_task_queue,
                    execution_timeout=timedelta(minutes=6),
                )  # fmt: skip

            hp = Hyperparameters(epochs=args.epochs, imgsz=args.imgsz, batch=args.batch,
                                 device=args.device, workers=args.workers, seed=1,
                                 extra={"mosaic": 0.0})  # fmt: skip
            handle = await run(TrainRequest(snapshot=snapshot, model_name="shapes",
                                            hyperparameters=hp))  # fmt: skip
            await throughput(args, root, settings, store, snapshot, await handle.result())
            if args.device != "cpu":  # --cpu-smoke: no out-of-memory to provoke
                await out_of_memory(args, snapshot, run, entry)
    finally:
        entry.terminate()
        entry.log.close()


async def throughput(
    args: argparse.Namespace, root: Path, settings: Any, store: Any, snapshot: Any, result: Any
) -> None:
    """Images/s of the workflow's run (``result``) and of bare Ultralytics on the same data."""
    from activities.dataset import materialize_snapshot

    images = snapshot.counts.get("train", 0)
    emit("gpu_entrypoint_trained", int(result.device == args.device))
    ours = _train_images_per_second(
        store.get_bytes(settings.runs_bucket, result.results_csv_key).decode(), images
    )
    with materialize_snapshot(store, settings, snapshot) as dataset:
        csv_text = await asyncio.to_thread(bare_ultralytics, dataset.data_yaml, args, root / "bare")
    bare = _train_images_per_second(csv_text, images)
    emit("gpu_images_per_second_workflow", round(ours, 1))
    emit("gpu_images_per_second_bare", round(bare, 1))
    emit("gpu_throughput_ratio", round(ours / bare, 3))


async def out_of_memory(
    args: argparse.Namespace, snapshot: Any, run: Any, entry: EntryPoint
) -> None:
    """A batch too big for the card: halved (by Ultralytics in its first epoch, by us when the
    error escapes it) and carried to the next attempt. If the run is still on its first
    attempt once training runs at the halved batch, the worker gets SIGTERM (a node drained)
    and a fresh one must resume at that batch, not at the one that did not fit."""
    from temporalio.client import WorkflowFailureError

    from activities.contracts.training import ArchitectureBase, Hyperparameters, TrainRequest
    from tests.helpers.history import activities_in, only
    from tests.helpers.polling import eventually
    from tests.helpers.training import heartbeat_details

    hp = Hyperparameters(epochs=3, imgsz=args.oom_imgsz, batch=args.oom_batch, device="0",
                         workers=args.workers, extra={"mosaic": 0.0})  # fmt: skip
    handle = await run(
        TrainRequest(
            snapshot=snapshot,
            model_name="shapes",
            hyperparameters=hp,
            min_batch=1,
            base=ArchitectureBase(name="yolov8x.yaml"),
        )
    )
    emit("gpu_oom_requested_batch", args.oom_batch)

    async def halved() -> dict[str, Any] | None:
        details = heartbeat_details(await handle.describe()) or {}
        fits = details.get("phase") == "train" and (details.get("batch") or 0) < args.oom_batch
        return details if fits and "batches" in (details.get("progress") or {}) else None

    details = await eventually(halved, timeout=240, interval=0.2, message="a batch that fits")
    emit("gpu_oom_batch_that_fits", details["batch"])
    if details.get("attempt") == 1:
        emit("gpu_oom_sigterm_exit_code", entry.terminate())
        entry.start()
    try:
        result = await handle.result()
        emit("gpu_oom_final_batch", result.batch)
        emit("gpu_oom_attempt", result.attempt)
    except WorkflowFailureError as exc:
        emit("gpu_oom_error", repr(str(exc.cause or exc))[:200])
    failure = only(activities_in(await handle.fetch_history()), "train").last_failure
    kind = failure.application_failure_info.type if failure is not None else "none"
    emit("gpu_oom_retried_as", kind)  # OutOfMemory or WorkerShutdown: the batch carried


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=700, help=">= oom-batch / 0.75")
    parser.add_argument("--image-px", type=int, default=128)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--oom-batch", type=int, default=512)
    parser.add_argument("--oom-imgsz", type=int, default=1280)
    parser.add_argument("--tests-timeout", type=float, default=200.0)
    parser.add_argument(
        "--cpu-smoke", action="store_true",
        help="without CUDA: run steps 2-3 on the CPU at tiny sizes (checks this script only)",
    )  # fmt: skip
    args = parser.parse_args()
    args.device = "0"

    import torch

    if args.cpu_smoke:
        args.device, args.images, args.image_px, args.imgsz = "cpu", 40, 64, 64
        args.batch, args.epochs, args.workers = 8, 1, 0
        from bench._stack import bench_stack

        with bench_stack("gpu-check") as (root, settings, store):
            asyncio.run(workflow_runs(args, root, settings, store))
        return 0
    if not torch.cuda.is_available():
        print("no CUDA device on this machine: the GPU path cannot be checked here (exit 0)")
        print("cuda_available=0")
        return 0
    started = time.monotonic()
    emit("cuda_available", 1)
    emit("gpu_name", torch.cuda.get_device_name(0).replace(" ", "_"))
    try:
        training_tests(args.tests_timeout)
    except Exception as exc:  # report and go on: one line per figure, whatever fails
        emit("gpu_training_tests_error", repr(exc)[:200])
    from bench._stack import bench_stack

    try:
        with bench_stack("gpu-check") as (root, settings, store):
            asyncio.run(workflow_runs(args, root, settings, store))
    except Exception as exc:
        emit("gpu_workflow_error", repr(exc)[:200])
    emit("gpu_check_seconds", round(time.monotonic() - started, 1))
    print("--- figures")
    for key, value in FIGURES.items():
        print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
