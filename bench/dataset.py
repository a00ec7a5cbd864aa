"""Benchmark (not a test): dataset assembly + materialization vs a naive sequential download.

Starts its own S3 server (moto) and a delay proxy in front of it, uploads ``--images`` small
synthetic images in the YOLO layout, then for each of two network conditions

* ``loopback``: straight to moto on 127.0.0.1 (moto is one Python process: ~150 GETs/s, so
  parallel clients gain little against it);
* ``20ms``: through a TCP proxy that holds each HTTP request 20 ms before forwarding it, as a
  real object store tens of ms away from a cluster would;

measures

* ``naive``: list the prefix, then ``get_file`` every object one after the other (same
  ``ObjectStore`` client): what a simple "download the dataset" script does;
* ``full``: ``assemble`` (list, fetch labels and images in parallel into the content cache,
  decode, validate, split, store the manifest) + ``materialize_snapshot`` on the same machine,
  starting from an empty cache;
* ``two-node``: the same snapshot materialized on an empty cache (a training node that did
  not assemble), reported separately;
* ``incremental``: after adding 5% images, assemble + materialize again with the warm cache.

The last three lines are machine-readable::

    speedup_vs_sequential_loopback=<naive / full on loopback>
    speedup_vs_sequential_20ms=<naive / full through the 20 ms proxy>
    incremental_fraction=<incremental / full through the 20 ms proxy>

Run: ``.venv/bin/python bench/dataset.py`` (a few minutes; ``--images 200`` for a quick look).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from activities.contracts.dataset import AssembleRequest, MinCounts
from activities.dataset import assemble, materialize_snapshot
from activities.infra import timings
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from workers.dev import synthetic
from workers.dev.stack import S3Server, free_port

_METHODS = (b"GET ", b"PUT ", b"HEAD ", b"POST ", b"DELETE ")


class DelayProxy:
    """A TCP proxy on loopback that delays every HTTP request by ``delay`` seconds.

    Runs an asyncio loop in a daemon thread. A chunk from the client that starts with an HTTP
    method is the start of a request (keep-alive connections carry many): it waits ``delay``
    before being forwarded; everything else streams through untouched.
    """

    def __init__(self, upstream_port: int, delay: float) -> None:
        self.upstream_port = upstream_port
        self.delay = delay
        self.port = 0
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: bool
    ) -> None:
        try:
            while data := await reader.read(1 << 16):
                if delay and data.startswith(_METHODS):
                    self.requests += 1
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            self._pipe(reader, up_writer, True), self._pipe(up_reader, writer, False)
        )

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"


def naive_download(store: ObjectStore, bucket: str, prefix: str, dest: Path) -> int:
    """List ``prefix`` and download every object sequentially; returns the object count."""
    count = 0
    for info in store.list(bucket, f"{prefix}/"):
        store.get_file(bucket, info.key, dest / info.key)
        count += 1
    return count


def timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def costs(record: timings.Timings) -> dict[str, float]:
    """A record's named costs plus ``other`` (its wall time not inside any named cost)."""
    named = {k: v for k, v in record.seconds.items() if not k.startswith("bg.")}
    return {**named, "other": max(0.0, record.wall - sum(named.values())), "total": record.wall}


def run_condition(
    name: str, settings: Settings, work: Path, prefix: str, request: AssembleRequest
) -> dict[str, float]:
    """Naive vs full (and two-node) for one network condition; returns timings."""
    store = ObjectStore.from_settings(settings)
    bucket = settings.data_bucket
    naive_s, objects = timed(naive_download, store, bucket, prefix, work / f"naive-{name}")
    shutil.rmtree(work / f"naive-{name}", ignore_errors=True)
    cpu = settings.model_copy(update={"cache_dir": work / f"cache-{name}"})
    with timings.collecting("assemble+materialize", name) as record:
        assemble_s, result = timed(assemble, store, cpu, request)
        materialize_s, local = timed(materialize_snapshot, store, cpu, result.snapshot)
    gpu = settings.model_copy(update={"cache_dir": work / f"cache-{name}-node2"})
    node2_s, remote = timed(materialize_snapshot, store, gpu, result.snapshot)
    full_s = assemble_s + materialize_s
    local.release(), remote.release()
    print(
        f"[{name}] naive sequential: {objects} objects in {naive_s:.2f}s | assembly "
        f"{assemble_s:.2f}s + materialization {materialize_s:.2f}s "
        f"(downloaded {local.downloaded}) = {full_s:.2f}s | two-node materialization "
        f"{node2_s:.2f}s (downloaded {remote.downloaded}) | images {sum(result.counts.values())}"
        f" {result.counts}",
        flush=True,
    )
    return {
        "naive": naive_s,
        "full": full_s,
        "two_node": assemble_s + node2_s,
        **{f"cost.{k}": v for k, v in costs(record).items()},
    }


def run_incremental(
    name: str, settings: Settings, work: Path, request: AssembleRequest
) -> tuple[float, dict[str, float]]:
    """Assembly + materialization after the source grew: (seconds, named costs)."""
    store = ObjectStore.from_settings(settings)
    cpu = settings.model_copy(update={"cache_dir": work / f"cache-{name}"})
    with timings.collecting("assemble+materialize", name) as record:
        assemble_s, result = timed(assemble, store, cpu, request)
        materialize_s, local = timed(materialize_snapshot, store, cpu, result.snapshot)
    total = assemble_s + materialize_s
    local.release()
    print(
        f"[{name}] incremental: assembly {assemble_s:.2f}s + materialization "
        f"{materialize_s:.2f}s (downloaded {local.downloaded}) = {total:.2f}s | images "
        f"{sum(result.counts.values())}",
        flush=True,
    )
    return total, costs(record)


def measure(args: argparse.Namespace, base: Settings, proxy: DelayProxy, work: Path) -> None:
    """Full and incremental runs over loopback and through the delaying proxy; prints all."""
    direct = ObjectStore.from_settings(base)
    direct.ensure_bucket(base.data_bucket)
    prefix = "datasets/bench"
    start = time.perf_counter()
    synthetic.upload(
        direct, base.data_bucket, prefix, layout="yolo", count=args.images, size=args.size
    )
    print(f"uploaded {args.images} images + labels in {time.perf_counter() - start:.1f}s")
    extra = max(1, round(args.images * 0.05))
    conditions = {
        "loopback": base,
        "20ms": base.model_copy(update={"s3_endpoint": proxy.endpoint}),
    }
    requests = {
        name: AssembleRequest(
            dataset=f"bench-{name}", prefix=prefix, min_counts=MinCounts(train=0, val=0, test=0)
        )
        for name in conditions
    }
    full = {n: run_condition(n, s, work, prefix, requests[n]) for n, s in conditions.items()}
    synthetic.upload(
        direct,
        base.data_bucket,
        prefix,
        layout="yolo",
        count=extra,
        start=args.images,
        size=args.size,
    )
    print(f"added {extra} images (5%)")
    runs = {n: run_incremental(n, s, work, requests[n]) for n, s in conditions.items()}
    incremental = {n: seconds for n, (seconds, _) in runs.items()}
    print(f"proxy forwarded {proxy.requests} requests with {args.delay_ms:g} ms each")
    for name in conditions:
        t = full[name]
        print(
            f"[{name}] speedup vs sequential: {t['naive'] / t['full']:.2f}x (same node), "
            f"{t['naive'] / t['two_node']:.2f}x (assembly + materialization "
            f"on another node); incremental fraction {incremental[name] / t['full']:.3f}"
        )
    speedup = {n: full[n]["naive"] / full[n]["full"] for n in conditions}
    print(f"speedup_vs_sequential_loopback={speedup['loopback']:.2f}")
    print(f"speedup_vs_sequential_20ms={speedup['20ms']:.2f}")
    breakdown(full["20ms"], runs["20ms"][1])
    print(f"incremental_fraction={incremental['20ms'] / full['20ms']['full']:.3f}")


def breakdown(full: dict[str, float], incremental: dict[str, float]) -> None:
    """Where the seconds of a full and of an incremental assembly (20 ms) go: a table, then
    one ``incremental_seconds_<cost>`` line per cost (what ``make bench`` collects)."""
    names = sorted(
        {k.removeprefix("cost.") for k in full if k.startswith("cost.")} | set(incremental),
        key=lambda k: (k == "total", k == "other", -incremental.get(k, 0.0)),
    )
    print("\n[20ms] where the seconds go (assembly + materialization, named spans)")
    print("| cost | full | incremental | incremental / full total |")
    print("|---|---|---|---|")
    total = full.get("cost.total", float("nan"))
    for name in names:
        f, i = full.get(f"cost.{name}", 0.0), incremental.get(name, 0.0)
        print(f"| {name} | {f:.3f} s | {i:.3f} s | {i / total:.3f} |")
    print()
    for name in names:
        if name != "total":
            print(f"incremental_seconds_{name}={incremental.get(name, 0.0):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (>= 32)")
    parser.add_argument("--delay-ms", type=float, default=20.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sentinel-bench-dataset-"))
    server = S3Server(work / "s3", port=free_port())
    server.start()
    proxy = DelayProxy(server.port, args.delay_ms / 1000)
    proxy.start()
    try:
        base = Settings(
            s3_endpoint=server.endpoint,
            s3_access_key="bench",  # type: ignore[arg-type]
            s3_secret_key="bench",  # type: ignore[arg-type]
            cache_dir=work / "unused",
        )
        measure(args, base, proxy, work)
    finally:
        proxy.stop()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
