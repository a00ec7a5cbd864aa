"""What the benchmark scripts share: their own embedded stack, and the machine's description.

The stack itself is the tests' (:mod:`tests.helpers.stack`): the same servers, environment
and buckets, in a scratch directory of the benchmark's own.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from tests.helpers.stack import embedded_stack


def cpu_model() -> str:
    """The processor's model name, as /proc/cpuinfo gives it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def s3_server_cpu_seconds(endpoint: str) -> float:
    """CPU seconds (user + system) used so far by the local S3 server serving ``endpoint``
    (``host:port``): on a benchmark machine it shares the cores with what is measured.
    0.0 when no such process is found (an S3 server elsewhere)."""
    port = endpoint.rsplit(":", 1)[-1].rstrip("/")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if not any(b"moto_server" in a for a in args) or port.encode() not in args:
                continue
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return 0.0


@contextmanager
def bench_stack(name: str, *, keep: bool = False) -> Iterator[tuple[Path, Settings, ObjectStore]]:
    """A Temporal dev server and an S3 server of the benchmark's own, on free ports.

    Exports ``SENTINEL_*`` (so subprocess workers see the same stack, on task queues of the
    benchmark's own), creates the buckets, and yields ``(scratch dir, settings, store)``;
    everything is stopped and removed after.
    """
    with embedded_stack(
        name, access_key="bench", secret_key="bench-secret", queue_prefix="bench", keep=keep
    ) as stack:
        yield stack
