"""Benchmark (not a test): memory of a large assembly, the cache bound, and a gc sweep.

* **assembly memory**: a YOLO prefix of ``N`` listed objects (``N/2`` images and their label
  files) is assembled once (the cache is filled), 1% new images are added, and a *fresh
  process* assembles it again (most objects cached: the steady state of a growing dataset).
  Reported: that process's peak RSS (``ru_maxrss``) at ``--small`` and ``--objects`` listed
  objects, the RSS of a process that only imports the same code (the floor), the growth per
  listed object between the two sizes, and the longest gap between two progress calls (what
  the activity heartbeats on) during the large one.
* **cache bound**: ``enforce_bound`` on the large run's cache (walk + evict to half).
* **gc**: a ``collect_garbage`` sweep (the activity, with a real Temporal dev server to ask
  who runs) over ``--runs`` finished run folders and a model with dead publishes.

The last lines are machine-readable::

    assembly_peak_rss_mb_small=<MB>  assembly_peak_rss_mb_large=<MB>
    assembly_rss_growth_kb_per_object=<KB>  assembly_max_progress_gap_seconds=<s>
    cache_bound_seconds=<s>  gc_seconds=<s>

Run: ``.venv/bin/python bench/bounds.py`` (about 30 minutes on 2 shared cores: uploading and
first downloading 110,000 objects through moto dominates); ``--quick`` for a smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from activities.contracts.dataset import AssembleRequest, MinCounts
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from workers.dev import synthetic
from workers.dev.stack import S3Server, free_port

IMAGE_SIDE = 32


def _request(prefix: str) -> AssembleRequest:
    return AssembleRequest(
        dataset=prefix.rsplit("/", 1)[-1],
        prefix=prefix,
        min_counts=MinCounts(train=0, val=0, test=0),
    )


def child_assemble(prefix: str) -> None:
    """In a fresh process: assemble ``prefix`` and print peak RSS, time, longest gap."""
    from activities.dataset import assemble

    settings = Settings()
    gaps: list[float] = [0.0]
    last = [time.monotonic()]

    def progress(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        gaps[0] = max(gaps[0], now - last[0])
        last[0] = now

    start = time.monotonic()
    result = assemble(
        ObjectStore.from_settings(settings), settings, _request(prefix), progress=progress
    )
    print(
        json.dumps(
            {
                "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                "seconds": time.monotonic() - start,
                "max_gap": max(gaps[0], time.monotonic() - last[0]),
                "images": sum(result.counts.values()),
            }
        )
    )


def child_baseline() -> None:
    """In a fresh process: import what an assembly imports, print the RSS (the floor)."""
    from activities.dataset import assemble  # noqa: F401

    ObjectStore.from_settings(Settings())
    print(json.dumps({"peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def _child(args: list[str], env: dict[str, str]) -> dict[str, float]:
    run = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if run.returncode:
        raise SystemExit(f"child {args} failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def _upload(store: ObjectStore, bucket: str, prefix: str, images: int, start: int = 0) -> float:
    began = time.monotonic()
    for first in range(start, start + images, 2000):
        count = min(2000, start + images - first)
        synthetic.upload(
            store, bucket, prefix, layout="yolo", count=count, start=first, size=IMAGE_SIDE
        )
    return time.monotonic() - began


def assembly_memory(
    store: ObjectStore, settings: Settings, env: dict[str, str], objects: int
) -> dict[str, float]:
    """Fill the cache with one assembly, add 1%, measure a fresh process's re-assembly."""
    prefix = f"datasets/mem-{objects}"
    images = objects // 2
    upload_s = _upload(store, settings.data_bucket, prefix, images)
    warm = _child(["assemble", prefix], env)
    extra = max(1, images // 100)
    _upload(store, settings.data_bucket, prefix, extra, start=images)
    measured = _child(["assemble", prefix], env)
    print(
        f"[{objects} listed objects] upload {upload_s:.0f}s, first assembly "
        f"{warm['seconds']:.0f}s (peak RSS {warm['peak_rss_kb'] / 1024:.0f} MB), re-assembly "
        f"with {2 * extra} new objects {measured['seconds']:.1f}s: peak RSS "
        f"{measured['peak_rss_kb'] / 1024:.0f} MB, {measured['images']} images, longest gap "
        f"between progress calls {measured['max_gap']:.2f}s",
        flush=True,
    )
    return measured


def cache_bound(cache_dir: Path) -> float:
    from activities.dataset.cache_bound import enforce_bound, usage

    start = time.monotonic()
    size = usage(cache_dir)
    walked = time.monotonic() - start
    result = enforce_bound(cache_dir, size // 2)
    seconds = time.monotonic() - start
    print(
        f"[cache bound] {size / 2**20:.0f} MiB walked in {walked:.2f}s; evicted {result.objects} "
        f"objects to {result.after / 2**20:.0f} MiB: {seconds:.2f}s in all",
        flush=True,
    )
    return seconds


async def gc_sweep(settings: Settings, runs: int, work: Path) -> float:
    """Finished-run folders and dead publishes, swept by the real activity."""
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import ActivityEnvironment

    from activities.contracts.retention import GcRequest
    from activities.infra.workflow_runs import WorkflowRuns
    from activities.retention import RetentionActivities
    from tests.helpers.stack import start_temporal

    store = ObjectStore.from_settings(settings)
    for bucket in (settings.runs_bucket, settings.models_bucket):
        store.ensure_bucket(bucket)
    names = ["checkpoints/epoch-0001.pt", "checkpoints/epoch-0002.pt", "checkpoints/epoch-0003.pt",
             "control/stop_early", "export/model-0000.onnx", "best.pt"]  # fmt: skip
    for n in range(runs):
        for name in names:
            store.put_bytes(settings.runs_bucket, f"runs/bench-{n:05d}/{name}", b"x" * 4096)
    for version in range(1, 51):  # dead publishes: a claim and a partial version each
        store.put_bytes(settings.models_bucket, f"models/bench/claims/v{version}.json", b"{}")
        store.put_bytes(settings.models_bucket, f"models/bench/v{version}/model.pt", b"x")
    temporal = start_temporal(work / "temporal")
    try:
        client = await Client.connect(temporal.address, data_converter=pydantic_data_converter)
        loop = asyncio.get_running_loop()
        swept = settings.model_copy(update={"retention_grace_hours": 0.0})
        activities = RetentionActivities(swept, store, WorkflowRuns(client, loop))
        start = time.monotonic()
        result = await loop.run_in_executor(
            None, ActivityEnvironment().run, activities.collect_garbage, GcRequest(grace_hours=0)
        )
        seconds = time.monotonic() - start
    finally:
        temporal.stop()
    print(
        f"[gc] {result.runs_seen} run folders ({len(names) * runs} objects) and "
        f"{result.models_seen} model: deleted {result.objects} objects in {seconds:.2f}s "
        f"({ {k: v.objects for k, v in result.categories.items() if v.objects} })",
        flush=True,
    )
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=100_000, help="listed objects, large run")
    parser.add_argument("--small", type=int, default=10_000, help="listed objects, small run")
    parser.add_argument("--runs", type=int, default=500, help="run folders swept by gc")
    parser.add_argument("--quick", action="store_true", help="2,000 and 400 objects, 20 runs")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_assemble(args.child[1]) if args.child[0] == "assemble" else child_baseline()
        return
    if args.quick:
        args.objects, args.small, args.runs = 2000, 400, 20
    work = Path(tempfile.mkdtemp(prefix="sentinel-bench-bounds-"))
    server = S3Server(work / "s3", port=free_port())
    server.start()
    try:
        settings = Settings(
            s3_endpoint=server.endpoint,
            s3_access_key="bench",  # type: ignore[arg-type]
            s3_secret_key="bench",  # type: ignore[arg-type]
            cache_dir=work / "cache",
            data_bucket=f"bench-{uuid.uuid4().hex[:6]}",
        )
        store = ObjectStore.from_settings(settings)
        store.ensure_bucket(settings.data_bucket)
        env = {
            **dict(__import__("os").environ),
            "SENTINEL_S3_ENDPOINT": server.endpoint,
            "SENTINEL_S3_ACCESS_KEY": "bench",
            "SENTINEL_S3_SECRET_KEY": "bench",
            "SENTINEL_DATA_BUCKET": settings.data_bucket,
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        }
        floor = _child(["baseline"], {**env, "SENTINEL_CACHE_DIR": str(work / "floor")})
        small = assembly_memory(
            store, settings, {**env, "SENTINEL_CACHE_DIR": str(work / "small")}, args.small
        )
        large = assembly_memory(
            store, settings, {**env, "SENTINEL_CACHE_DIR": str(work / "large")}, args.objects
        )
        bound_s = cache_bound(work / "large")
        gc_s = asyncio.run(gc_sweep(settings, args.runs, work))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    growth = (large["peak_rss_kb"] - small["peak_rss_kb"]) / (args.objects - args.small)
    print(f"floor (imports only): peak RSS {floor['peak_rss_kb'] / 1024:.0f} MB")
    print(f"assembly_peak_rss_mb_small={small['peak_rss_kb'] / 1024:.0f}")
    print(f"assembly_peak_rss_mb_large={large['peak_rss_kb'] / 1024:.0f}")
    print(f"assembly_rss_growth_kb_per_object={growth:.2f}")
    print(f"assembly_max_progress_gap_seconds={large['max_gap']:.2f}")
    print(f"cache_bound_seconds={bound_s:.2f}")
    print(f"gc_seconds={gc_s:.2f}")


if __name__ == "__main__":
    main()
