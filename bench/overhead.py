"""Benchmark (not a test): the full RetrainWorkflow versus bare Ultralytics on the same snapshot.

Starts its own stack (real Temporal dev server, moto S3 server, in-process CPU + GPU workers
from ``workers.factory.build_worker``), uploads synthetic images, assembles one snapshot per
job size (``activities.dataset.assemble``) and materializes it locally
(``materialize_snapshot``), so both sides train on identical files with identical
hyperparameters (``yolov8n.yaml`` from scratch, imgsz 96, mosaic 0, ``nbs`` = batch,
workers 0, CPU, fixed seed, no plots, no AMP):

* ``bare``: ``YOLO("yolov8n.yaml").train(...)`` + ``.val(split="test")`` +
  ``.export(format="onnx")``, in this process;
* ``pipeline``: ``SentinelClient.start_retrain`` + wait for the result: assemble (finds the
  same snapshot, warm cache), train (heartbeats; a checkpoint to S3 at most every
  ``SENTINEL_CHECKPOINT_INTERVAL_SECONDS``), evaluate (test split, bootstrap CI with
  ``--bootstrap`` resamples; no champion: every repetition uses a fresh model name, so each is
  a v1), gate, ONNX export + parity validation, publish, notify.

Runs alternate (bare, pipeline, bare, pipeline, ...) in the same process so both sides see the
same machine load. Per job: median of pipeline/bare over the pairs; fixed overhead = median of
(pipeline - bare) on the tiny job (training is ~the same on both sides, so what remains is the
per-run fixed cost, plus the per-epoch costs of a short run); a two-point fit through the
medians (pipeline = a + k x bare) is printed too. Stage times of the pipeline come from the
activities' timing records (below), read after the run: nothing observes the run while it runs.
``--poll S`` adds the stages as the ``progress`` query sees them every S seconds; off by default
because the observer is not free: one query costs about 5 ms of machine CPU (client, server and
the worker answering it; measured 2026-12-03), so polling every 0.25 s took ~1% of the two
cores from the pipeline's training and none from the bare side.

Also measures stop-early latency: a pipeline run is sent ``stop_early`` after its second epoch;
``stop_early_latency_seconds`` = signal -> the progress query leaves the ``training`` stage.

Where the seconds go: the workers run in this process, so after each pipeline run the
activities' timing records (:mod:`activities.infra.timings`: one per activity execution,
opened by the worker's interceptor, filled by spans around the real code paths) are read
back by workflow id. Per job a table gives each stage's wall time against the bare step it
matches and every named cost inside it (training: Ultralytics itself, heartbeats, checkpoint
staging and its background upload, control polling, progress signals, the run log, dataset
materialization, final uploads; evaluation: validation, its plots, evidence; export: ONNX
export, the parity check's checker / raw outputs / PyTorch and ONNX validations, upload;
publish: transfers, training curves), plus orchestration (what the activities' wall times do
not cover). :mod:`bench._overhead_breakdown` prints it and one line per figure
of the medium job (``breakdown_medium_<stage>[_<cost>]_seconds=<s>``) before the last lines.

The last lines are machine-readable::

    overhead_ratio_tiny=<x>
    overhead_ratio_medium=<x>
    overhead_ratio_medium_accounted=<x>
    fixed_overhead_seconds=<s>
    stop_early_latency_seconds=<s>

``overhead_ratio_medium_accounted`` is the same ratio with the pipeline's Ultralytics time
(``fit`` minus our hooks) replaced by the bare run's train time: what our code adds, span by
span, free of the training's own run-to-run drift (a few percent here for identical work).

Run: ``.venv/bin/python bench/overhead.py`` (about 20-30 minutes on 2 CPU cores);
``--quick`` for a smoke run (1 repetition, tiny sizes). The tables, the fit and the last
lines are printed by :mod:`bench._overhead_results`.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from activities.contracts.dataset import AssembleRequest, MinCounts, SnapshotRef
from activities.contracts.retrain import EvaluationOptions, Progress, RetrainRequest
from activities.contracts.training import Hyperparameters
from activities.dataset import assemble, materialize_snapshot
from activities.infra import timings
from activities.infra.connection import connect
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.infra.yolo_env import bootstrap_offline
from bench._overhead_breakdown import attach
from bench._overhead_results import Job, Pair, print_results
from bench._stack import bench_stack
from tests.helpers.polling import eventually
from workers.dev import synthetic
from workers.factory import build_worker
from workflows.client.api import SentinelClient


def hyperparameters(job: Job) -> Hyperparameters:
    """Same for both sides (the pipeline adds plots=False, verbose=False, amp=False itself)."""
    return Hyperparameters(
        epochs=job.epochs,
        imgsz=job.imgsz,
        batch=job.batch,
        seed=job.seed,
        device="cpu",
        workers=0,
        extra={"mosaic": 0.0, "nbs": job.batch},
    )


def assemble_request(job: Job, prefix: str) -> AssembleRequest:
    return AssembleRequest(
        dataset=f"bench-overhead-{job.name}",
        prefix=prefix,
        min_counts=MinCounts(train=4, val=1, test=1),
    )


def prepare(job: Job, settings: Settings, store: ObjectStore) -> tuple[str, SnapshotRef, Path]:
    """Upload, assemble and materialize the job's snapshot; returns (prefix, snapshot, yaml)."""
    prefix = f"datasets/overhead-{job.name}-{uuid.uuid4().hex[:6]}"
    synthetic.upload(
        store, settings.data_bucket, prefix, layout="yolo", count=job.images, seed=job.seed,
        verified=True, size=job.imgsz,
    )  # fmt: skip
    snapshot = assemble(store, settings, assemble_request(job, prefix)).snapshot
    with materialize_snapshot(store, settings, snapshot) as local:
        print(f"[{job.name}] snapshot {snapshot.key}: {local.counts}", flush=True)
    return prefix, snapshot, local.data_yaml


def run_bare(job: Job, data_yaml: Path, work: Path) -> dict[str, float]:
    """Bare Ultralytics: train + val(test) + ONNX export; seconds per step."""
    from ultralytics import YOLO

    hp = hyperparameters(job)
    save_dir = work / f"bare-{job.name}-{uuid.uuid4().hex[:6]}"
    times: dict[str, float] = {}
    start = time.perf_counter()
    model = YOLO("yolov8n.yaml")
    model.train(
        data=str(data_yaml), epochs=hp.epochs, imgsz=hp.imgsz, batch=hp.batch, seed=hp.seed,
        device="cpu", workers=0, plots=False, verbose=False, amp=False, exist_ok=True,
        project=str(save_dir.parent), name=save_dir.name, **hp.extra,
    )  # fmt: skip
    times["train"] = time.perf_counter() - start
    mark = time.perf_counter()
    metrics = model.val(
        data=str(data_yaml), split="test", imgsz=hp.imgsz, batch=hp.batch, device="cpu",
        plots=False, verbose=False,
    )  # fmt: skip
    times["evaluate"] = time.perf_counter() - mark
    mark = time.perf_counter()
    model.export(format="onnx", imgsz=hp.imgsz, device="cpu")
    times["export"] = time.perf_counter() - mark
    times["total"] = time.perf_counter() - start
    times["map50_95"] = float(metrics.box.map)
    shutil.rmtree(save_dir, ignore_errors=True)
    return times


async def run_pipeline(
    sentinel: SentinelClient,
    job: Job,
    prefix: str,
    resamples: int,
    poll: float = 0.0,
    pair: Pair | None = None,
) -> dict[str, float]:
    """The full RetrainWorkflow for a fresh model (a v1: no champion); seconds per stage.

    ``pair``: gets the run's activity timing records (the workers run in this process).
    """
    model = f"ovh-{job.name}-{uuid.uuid4().hex[:8]}"
    request = RetrainRequest(
        model_name=model,
        dataset=assemble_request(job, prefix),
        hyperparameters=hyperparameters(job),
        evaluation=EvaluationOptions(bootstrap_resamples=resamples),
    )
    stages: dict[str, float] = {}
    start = time.perf_counter()
    workflow_id = await sentinel.start_retrain(request)
    last, last_at = "queued", start
    result_task = asyncio.ensure_future(sentinel.result(model))
    while poll > 0 and not result_task.done():
        try:
            stage = (await sentinel.progress(model)).stage
        except Exception:  # not queryable yet
            stage = last
        now = time.perf_counter()
        if stage != last:
            stages[last] = stages.get(last, 0.0) + now - last_at
            last, last_at = stage, now
        await asyncio.wait({result_task}, timeout=poll)
    result = await result_task
    end = time.perf_counter()
    if poll > 0:
        stages[last] = stages.get(last, 0.0) + end - last_at
    stages["total"] = end - start
    stages["map50_95"] = result.candidate_map50_95
    if pair is not None:
        attach(pair, timings.recent(workflow_id))
    return stages


async def stop_early_latency(sentinel: SentinelClient, job: Job, prefix: str) -> float:
    """Signal ``stop_early`` after epoch 2 of a long run; seconds until training ends."""
    model = f"ovh-stop-{uuid.uuid4().hex[:8]}"
    request = RetrainRequest(
        model_name=model,
        dataset=assemble_request(job, prefix),
        hyperparameters=hyperparameters(job).model_copy(update={"epochs": 200}),
        evaluation=EvaluationOptions(bootstrap_resamples=10),
    )
    await sentinel.start_retrain(request)

    async def past_epoch_two() -> Progress | None:
        progress = await sentinel.progress(model)
        return progress if progress.stage == "training" and progress.epoch >= 2 else None

    async def training_ended() -> bool:
        return (await sentinel.progress(model)).stage != "training"

    # Exception: not queryable yet. Both polls every 50 ms (the measurement's resolution).
    progress = await eventually(
        past_epoch_two, timeout=3600, interval=0.05, ignore=Exception, message="epoch 2"
    )
    asked = time.perf_counter()
    await sentinel.stop_early(model)
    await eventually(training_ended, timeout=3600, interval=0.05, message="training to end")
    latency = time.perf_counter() - asked
    result = await sentinel.result(model)
    print(
        f"stop-early: signalled at epoch {progress.epoch}, training ended after "
        f"{result.epochs_done} epochs, {latency:.2f}s after the signal (stopped_early="
        f"{result.stopped_early})",
        flush=True,
    )
    return latency


async def measure(args: argparse.Namespace, settings: Settings, work: Path) -> dict[str, Any]:
    store = ObjectStore.from_settings(settings)
    client = await connect(settings)
    sentinel = SentinelClient(client, settings)
    jobs = [
        Job("tiny", args.tiny_images, args.tiny_epochs, args.batch, args.imgsz, args.seed),
        Job("medium", args.medium_images, args.medium_epochs, args.batch, args.imgsz, args.seed),
    ]
    reps = {"tiny": args.reps, "medium": args.medium_reps or args.reps}
    workers = [build_worker(client, settings, kind, store=store) for kind in ("cpu", "gpu")]
    out: dict[str, Any] = {}
    async with workers[0], workers[1]:
        for job in jobs:
            prefix, _, data_yaml = prepare(job, settings, store)
            if job.name == "tiny":  # unrecorded warm-up of both sides (imports, first runs)
                warm = Job("tiny", job.images, 1, job.batch, job.imgsz, job.seed)
                await asyncio.to_thread(run_bare, warm, data_yaml, work)
                await run_pipeline(sentinel, warm, prefix, args.bootstrap, args.poll)
            pairs: list[Pair] = []
            for rep in range(reps[job.name]):
                pair = Pair()
                # bare first, then pipeline; the order alternates within the process
                pair.bare = await asyncio.to_thread(run_bare, job, data_yaml, work)
                print(f"[{job.name}] rep {rep + 1} bare {pair.bare['total']:.1f}s", flush=True)
                pair.pipeline = await run_pipeline(
                    sentinel, job, prefix, args.bootstrap, args.poll, pair
                )
                print(
                    f"[{job.name}] rep {rep + 1} pipeline {pair.pipeline['total']:.1f}s "
                    f"(ratio {pair.ratio:.3f})",
                    flush=True,
                )
                pairs.append(pair)
            out[job.name] = (job, pairs)
            if job.name == "tiny" and not args.no_stop_early:
                out["stop_early"] = await stop_early_latency(sentinel, job, prefix)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="pairs per job")
    parser.add_argument("--medium-reps", type=int, default=0, help="pairs for medium (0: --reps)")
    parser.add_argument("--tiny-images", type=int, default=32)
    parser.add_argument("--tiny-epochs", type=int, default=50)
    parser.add_argument("--medium-images", type=int, default=256)
    parser.add_argument("--medium-epochs", type=int, default=60)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--imgsz", type=int, default=96)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bootstrap", type=int, default=100, help="bootstrap resamples")
    parser.add_argument(
        "--poll", type=float, default=0.0,
        help="also poll the progress query every S seconds for stage times (costs the pipeline "
        "~5 ms of CPU per query; 0: off, stage times come from the timing records)",
    )  # fmt: skip
    parser.add_argument("--no-stop-early", action="store_true", help="skip the latency run")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 rep, tiny sizes")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.medium_reps = 1, 1
        args.tiny_images, args.tiny_epochs = 16, 2
        args.medium_images, args.medium_epochs = 24, 3
        args.imgsz = 64

    with bench_stack("overhead", keep=args.keep) as (root, settings, _store):
        bootstrap_offline()
        results = asyncio.run(measure(args, settings, root / "work"))

    print_results(results, args.bootstrap)
    return 0


if __name__ == "__main__":
    sys.exit(main())
