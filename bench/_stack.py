"""What the benchmark scripts share: their own embedded stack, and the machine's description."""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from workers.dev.stack import S3Server, TemporalDevServer, free_port


def cpu_model() -> str:
    """The processor's model name, as /proc/cpuinfo gives it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


@contextmanager
def bench_stack(name: str, *, keep: bool = False) -> Iterator[tuple[Path, Settings, ObjectStore]]:
    """A Temporal dev server and an S3 server of the benchmark's own, on free ports.

    Exports ``SENTINEL_*`` (so subprocess workers see the same stack), creates the buckets,
    and yields ``(scratch dir, settings, store)``; everything is stopped and removed after.
    """
    root = Path(tempfile.mkdtemp(prefix=f"sentinel-{name}-"))
    temporal = TemporalDevServer(root / "temporal", port=free_port(), ui_port=None)
    s3 = S3Server(root / "s3", port=free_port())
    tag = uuid.uuid4().hex[:6]
    try:
        temporal.start()
        s3.start()
        os.environ.update(
            {
                "SENTINEL_TEMPORAL_ADDRESS": temporal.address,
                "SENTINEL_S3_ENDPOINT": s3.endpoint,
                "SENTINEL_S3_ACCESS_KEY": "bench",
                "SENTINEL_S3_SECRET_KEY": "bench-secret",
                "SENTINEL_CACHE_DIR": str(root / "cache"),
                "SENTINEL_CPU_TASK_QUEUE": f"bench-cpu-{tag}",
                "SENTINEL_GPU_TASK_QUEUE": f"bench-gpu-{tag}",
                "SENTINEL_HEARTBEAT_THROTTLE_SECONDS": "1",
                "SENTINEL_GRACEFUL_SHUTDOWN_SECONDS": "30",
            }
        )
        settings = Settings()
        store = ObjectStore.from_settings(settings)
        for bucket in settings.buckets:
            store.ensure_bucket(bucket)
        yield root, settings, store
    finally:
        s3.stop()
        temporal.stop()
        if keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
