"""Benchmark (not a test): PredictWorkflow against bare Ultralytics ``predict``, and a SIGKILL.

Starts its own stack (real Temporal dev server, moto S3 server, in-process CPU + GPU workers
from ``workers.factory.build_worker``), generates ``--images`` synthetic images of
``--size`` px (written locally and uploaded to S3), trains a tiny ``yolov8n.yaml`` model from
scratch (no pretrained weights offline), exports it to ONNX and registers both files as v1
through the real publish protocol. Then, for each backend, on the same images and weights:

* ``bare``: ``YOLO(weights).predict(source=<local folder>, stream=True, batch, imgsz, conf)``
  in this process, results consumed and dropped (nothing written);
* ``workflow``: ``SentinelClient.start_prediction`` + wait for the result: plan (S3 listing),
  shards (images downloaded from S3, inference, YOLO label files and batch parts uploaded),
  finish (COCO results, Label Studio tasks, ranking, summary, manifest uploaded). PyTorch
  shards run on the GPU queue, ONNX Runtime shards on the CPU queue; both workers are this
  process's, on the same 2 cores as the S3 server.

``predict_ratio_vs_bare_<backend>`` = workflow images/s / bare images/s (wall time, start to
result; median over ``--repeat`` alternating pairs, both sides warm: model loaded, one
warm-up run); ``predict_ratio_vs_bare`` is the lower of the two. Then the kill: a ``python -m
workers`` subprocess predicts ``--kill-images`` images (PyTorch); once a batch of a shard is
stored it is SIGKILLed and a second worker finishes the run; ``predict_images_repeated`` is
the number of images whose inference finished in both attempts (from the workers' logs), and
the outputs are checked to hold every image exactly once.

The last lines are machine-readable::

    predict_ratio_vs_bare=<x>
    predict_ratio_vs_bare_pytorch=<x>
    predict_ratio_vs_bare_onnx=<x>
    predict_images_repeated=<n>

Run: ``.venv/bin/python bench/predict.py`` (2000 images of 320 px: about 10 minutes on 2 CPU
cores); ``--quick`` for a smoke run (200 images).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import re
import statistics
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from activities.contracts.predict import (  # noqa: E402
    ImageSource,
    PredictBackend,
    PredictOptions,
    PredictRequest,
)
from activities.infra.connection import connect  # noqa: E402
from activities.infra.settings import Settings  # noqa: E402
from activities.infra.storage import ObjectStore  # noqa: E402
from bench._stack import bench_stack, cpu_model, s3_server_cpu_seconds  # noqa: E402
from tests.helpers.polling import eventually  # noqa: E402
from tests.helpers.predict import TinyModel, register, train_tiny  # noqa: E402
from tests.helpers.stack import Queues, WorkerProcess  # noqa: E402
from workers.dev import synthetic  # noqa: E402
from workers.factory import build_worker  # noqa: E402
from workflows.client.api import SentinelClient  # noqa: E402

BACKENDS: tuple[PredictBackend, ...] = ("pytorch", "onnx")
LOG_LINE = re.compile(r"predicted shard \d+ \((\w+)\) batch (\d+): (\d+) images")


def upload_images(
    store: ObjectStore, bucket: str, prefix: str, local: Path, args: argparse.Namespace
) -> int:
    """Generate the images, write them under ``local`` and upload them under ``prefix``."""
    local.mkdir(parents=True, exist_ok=True)
    images = synthetic.generate(args.images, seed=5, size=args.size)

    def put(item: synthetic.SyntheticImage) -> None:
        (local / f"{item.stem}.png").write_bytes(item.png)
        store.put_bytes(bucket, f"{prefix}/{item.stem}.png", item.png, content_type="image/png")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, images))
    return len(images)


def bare_model(weights: Path, local: Path, args: argparse.Namespace) -> Any:
    """The loaded model, warmed up on one image (the workflow's workers keep theirs loaded)."""
    from ultralytics import YOLO

    model = YOLO(str(weights))
    first = next(local.iterdir())
    model.predict(source=str(first), imgsz=args.imgsz, conf=args.conf, device="cpu", verbose=False)
    return model


def bare(model: Any, local: Path, args: argparse.Namespace) -> float:
    """Seconds of Ultralytics' own predict over the local folder."""
    started = time.monotonic()
    count = 0
    for _ in model.predict(
        source=str(local), stream=True, batch=args.batch, imgsz=args.imgsz, conf=args.conf,
        device="cpu", verbose=False,
    ):  # fmt: skip
        count += 1
    seconds = time.monotonic() - started
    assert count == args.images, f"bare predicted {count} of {args.images} images"
    return seconds


def request(
    model: str, prefix: str, out: str, backend: PredictBackend, args: argparse.Namespace
) -> PredictRequest:
    return PredictRequest(
        model=model,
        source=ImageSource(prefix=prefix),
        out=out,
        backend=backend,
        options=PredictOptions(conf=args.conf, imgsz=args.imgsz, batch=args.batch, device="cpu"),
        shard_size=args.shard_size,
        parallel_shards=args.parallel,
    )


async def workflow_run(
    sentinel: SentinelClient, store: ObjectStore, req: PredictRequest
) -> tuple[float, str]:
    """Seconds from start to result, and where they went (from the run's manifest)."""
    started = time.monotonic()
    workflow_id = await sentinel.start_prediction(req)
    result = await sentinel.prediction_result(workflow_id)
    seconds = time.monotonic() - started
    manifest = json.loads(store.get_bytes(result.out_bucket, result.manifest_key))
    shard_seconds = sum(shard["seconds"] for shard in manifest["shards"])
    detail = (
        f"{len(manifest['shards'])} shards took {shard_seconds:.1f} s in their activities, "
        f"{result.summary.predictions} predictions"
    )
    return seconds, detail


async def throughput(
    settings: Settings,
    store: ObjectStore,
    model: str,
    files: TinyModel,
    prefixes: tuple[str, str],
    local: Path,
    args: argparse.Namespace,
) -> dict[str, float]:
    """Bare and workflow, alternating, ``--repeat`` pairs per backend; median ratios."""
    prefix, warm_prefix = prefixes
    client = await connect(settings)
    workers = [build_worker(client, settings, kind, store=store) for kind in ("cpu", "gpu")]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    sentinel = SentinelClient(client, settings)
    ratios: dict[str, float] = {}
    try:
        for backend in BACKENDS:
            weights = files.pt if backend == "pytorch" else files.onnx
            loaded = await asyncio.to_thread(bare_model, weights, local, args)
            warm = request(model, warm_prefix, f"bench/warm-{uuid.uuid4().hex[:6]}", backend, args)
            await workflow_run(sentinel, store, warm)  # warm-up: imports, weights, loaded model
            pairs = []
            for rep in range(args.repeat):
                s3_before = s3_server_cpu_seconds(settings.s3_endpoint)
                bare_s = await asyncio.to_thread(bare, loaded, local, args)
                s3_bare = s3_server_cpu_seconds(settings.s3_endpoint) - s3_before
                out = f"bench/{backend}-{uuid.uuid4().hex[:6]}"
                job = request(model, prefix, out, backend, args)
                flow_s, detail = await workflow_run(sentinel, store, job)
                s3_flow = s3_server_cpu_seconds(settings.s3_endpoint) - s3_before - s3_bare
                pairs.append(bare_s / flow_s)
                print(
                    f"{backend:8s} pair {rep + 1}: bare {bare_s:7.2f} s "
                    f"({args.images / bare_s:6.1f} img/s)   workflow {flow_s:7.2f} s "
                    f"({args.images / flow_s:6.1f} img/s)   ratio {pairs[-1]:.3f}; {detail}; "
                    f"S3 server CPU on these cores: bare {s3_bare:.1f} s, workflow {s3_flow:.1f} s",
                    flush=True,
                )
            ratios[backend] = statistics.median(pairs)
    finally:
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
        await asyncio.gather(*tasks, return_exceptions=True)
    return ratios


def repeated(log: str) -> int:
    """Images of batches whose inference finished in more than one attempt."""
    seen: dict[tuple[str, int], list[int]] = {}
    for digest, batch, count in LOG_LINE.findall(log):
        seen.setdefault((digest, int(batch)), []).append(int(count))
    return sum(sum(counts[1:]) for counts in seen.values())


async def kill_run(
    settings: Settings,
    store: ObjectStore,
    model: str,
    prefix: str,
    root: Path,
    args: argparse.Namespace,
) -> int:
    """SIGKILL the only worker once a batch is stored; returns the images predicted twice."""
    queues = Queues(settings.cpu_task_queue, settings.gpu_task_queue, settings)
    client = await connect(settings)
    sentinel = SentinelClient(client, settings)
    out = f"bench/kill-{uuid.uuid4().hex[:6]}"
    shard = max(1, args.kill_images // 4)
    req = request(model, prefix, out, "pytorch", args).model_copy(
        update={"shard_size": shard, "shard_heartbeat_timeout_seconds": 10}
    )
    first = WorkerProcess(queues, "cpu,gpu", root / "kill-a.log", {})
    second = None
    try:
        workflow_id = await sentinel.start_prediction(req)

        async def a_batch_stored() -> bool:
            return any(True for _ in store.list(settings.data_bucket, f"{out}/shards/parts/"))

        await eventually(a_batch_stored, timeout=300, interval=0.05, message="a stored batch")
        first.kill()
        killed = time.monotonic()
        second = WorkerProcess(queues, "cpu,gpu", root / "kill-b.log", {})
        result = await sentinel.prediction_result(workflow_id)
        print(f"kill: run finished {time.monotonic() - killed:.1f} s after the SIGKILL", flush=True)
        tasks = json.loads(store.get_bytes(settings.data_bucket, f"{out}/labelstudio/tasks.json"))
        keys = [task["data"]["key"] for task in tasks]
        assert len(keys) == len(set(keys)) == result.summary.images == args.kill_images, (
            "exactly once"
        )
        return repeated(first.log() + second.log())
    finally:
        first.close()
        if second is not None:
            second.close()


async def main_async(args: argparse.Namespace) -> int:
    from activities.infra.yolo_env import bootstrap_offline

    bootstrap_offline()
    with bench_stack("predict") as (root, settings, store):
        model = f"bench-{uuid.uuid4().hex[:6]}"
        started = time.monotonic()
        count = upload_images(
            store, settings.data_bucket, "datasets/bench-predict", root / "images", args
        )
        files = train_tiny(root / "model", epochs=args.epochs, imgsz=args.imgsz)
        register(store, settings, model, files)
        print(
            f"setup: {count} images of {args.size} px, model trained and registered in "
            f"{time.monotonic() - started:.0f} s",
            flush=True,
        )
        kill_args = argparse.Namespace(**{**vars(args), "images": args.kill_images})
        upload_images(store, settings.data_bucket, "datasets/bench-kill", root / "kill", kill_args)
        prefixes = ("datasets/bench-predict", "datasets/bench-kill")
        ratios = await throughput(settings, store, model, files, prefixes, root / "images", args)
        twice = await kill_run(settings, store, model, "datasets/bench-kill", root, args)
    print(f"machine: {cpu_model()}, Python {platform.python_version()}")
    print(f"predict_ratio_vs_bare={min(ratios.values()):.3f}")
    for backend, ratio in ratios.items():
        print(f"predict_ratio_vs_bare_{backend}={ratio:.3f}")
    print(f"predict_images_repeated={twice}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="images predicted per side")
    parser.add_argument("--size", type=int, default=320, help="synthetic image side (px)")
    parser.add_argument("--imgsz", type=int, default=320, help="inference size")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--conf", type=float, default=0.01, help="low: a tiny model predicts")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs of the model")
    parser.add_argument("--shard-size", type=int, default=500)
    parser.add_argument("--parallel", type=int, default=1, help="shards at once (2 cores)")
    parser.add_argument("--kill-images", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=1, help="bare/workflow pairs per backend")
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 images")
    args = parser.parse_args()
    if args.quick:
        args.images, args.kill_images, args.shard_size = 200, 96, 100
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
