"""The stack end to end: real Temporal dev server, real S3 server over HTTP, real workers."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from minio import Minio
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from activities.contracts.registry import ListVersionsRequest
from activities.infra.connection import TemporalUnavailableError, connect
from activities.infra.errors import (
    ConfigurationError,
    IntegrityError,
    NotFoundError,
    TransientStorageError,
    UnsafeKeyError,
)
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from tests.conftest import REPO_ROOT, Queues, RunWorkers
from workers.dev.stack import S3Server, free_port
from workflows.registry_ops import ListVersionsWorkflow


def _prefix() -> str:
    return f"datasets/t-{uuid.uuid4().hex[:8]}"


async def test_missing_bucket_fails_the_workflow_fast_and_clearly(
    client: Client, queues: Queues, run_workers: RunWorkers
) -> None:
    async with run_workers(kinds=("cpu",), models_bucket="no-such-bucket"):
        with pytest.raises(WorkflowFailureError) as info:
            await client.execute_workflow(
                ListVersionsWorkflow.run,
                ListVersionsRequest(model="no-bucket-model"),
                id=f"list-{uuid.uuid4().hex[:8]}",
                task_queue=queues.cpu,
            )
    cause = info.value.cause.cause  # workflow failure <- activity error <- application error
    assert isinstance(cause, ApplicationError)
    assert cause.type == "ConfigurationError"
    assert cause.non_retryable
    assert "bucket 'no-such-bucket' does not exist" in cause.message


def test_round_trip_and_verification(
    store: ObjectStore, settings: Settings, tmp_path: Path
) -> None:
    key = f"{_prefix()}/blob.bin"
    source = tmp_path / "blob.bin"
    source.write_bytes(os.urandom(200_000))
    info = store.put_file(settings.data_bucket, key, source)
    assert store.stat(settings.data_bucket, key) == info
    sha = store.get_file(settings.data_bucket, key, tmp_path / "copy.bin")
    assert sha == info.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert (tmp_path / "copy.bin").read_bytes() == source.read_bytes()
    assert store.get_bytes(settings.data_bucket, key) == source.read_bytes()
    with pytest.raises(IntegrityError, match="failed verification"):
        store.get_bytes(settings.data_bucket, key, expected_sha256="0" * 64)


def test_tampered_object_is_refused(store: ObjectStore, settings: Settings, tmp_path: Path) -> None:
    key = f"{_prefix()}/model.pt"
    info = store.put_bytes(settings.data_bucket, key, b"original weights")
    # Someone overwrites the bytes but copies the old sha256 metadata.
    store.client.put_object(
        settings.data_bucket,
        key,
        __import__("io").BytesIO(b"evil"),
        4,
        metadata={"sha256": info.sha256 or ""},
    )
    with pytest.raises(IntegrityError, match="tampered"):
        store.get_file(settings.data_bucket, key, tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()


def test_conditional_create_never_overwrites(store: ObjectStore, settings: Settings) -> None:
    key = f"{_prefix()}/once.json"
    store.put_bytes(settings.data_bucket, key, b"first", if_absent=True)
    with pytest.raises(FileExistsError):
        store.put_bytes(settings.data_bucket, key, b"second", if_absent=True)
    assert store.get_bytes(settings.data_bucket, key) == b"first"


def test_download_many_parallel_and_safe(
    store: ObjectStore, settings: Settings, tmp_path: Path
) -> None:
    prefix = _prefix()
    keys = [f"{prefix}/images/{i:03d}.png" for i in range(40)]
    for i, key in enumerate(keys):
        store.put_bytes(settings.data_bucket, key, f"image {i}".encode())
    seen: list[int] = []
    paths = store.download_many(
        settings.data_bucket,
        [(k, None) for k in keys],
        tmp_path,
        strip_prefix=f"{prefix}/",
        on_done=seen.append,
    )
    assert [p.read_text() for p in paths] == [f"image {i}" for i in range(40)]
    assert seen[-1] == 40
    with pytest.raises(UnsafeKeyError):
        store.download_many(settings.data_bucket, [("a/../../x", None)], tmp_path)
    with pytest.raises(NotFoundError):
        store.get_bytes(settings.data_bucket, f"{prefix}/missing")


def test_wrong_credentials_are_a_clear_configuration_error(tmp_path: Path) -> None:
    # A second S3 server that enforces authentication (moto's IAM check).
    server = S3Server(tmp_path, port=free_port())
    server.start(env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        settings = Settings(
            s3_endpoint=server.endpoint, s3_access_key="wrong", s3_secret_key="wrong"
        )
        with pytest.raises(ConfigurationError, match="refused the credentials") as info:
            ObjectStore.from_settings(settings).check_bucket("sentinel-data")
        assert "SENTINEL_S3_ACCESS_KEY" in str(info.value)
        assert "\n" not in str(info.value)
    finally:
        server.stop()


def test_unreachable_s3_is_transient(settings: Settings) -> None:
    dead = settings.model_copy(update={"s3_endpoint": f"127.0.0.1:{free_port()}"})
    store = ObjectStore.from_settings(dead, max_attempts=2, backoff_seconds=0.01)
    with pytest.raises(TransientStorageError, match="unreachable"):
        store.check_bucket("sentinel-data")


async def test_unreachable_temporal_is_one_clear_line() -> None:
    settings = Settings(temporal_address=f"127.0.0.1:{free_port()}")
    with pytest.raises(TemporalUnavailableError) as info:
        await connect(settings, timeout=1)
    message = str(info.value)
    assert message.startswith(f"cannot reach Temporal at {settings.temporal_address}")
    assert "SENTINEL_TEMPORAL_ADDRESS" in message and "\n" not in message


def _worker_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workers", "--check"],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_worker_check_reports_each_problem_in_one_line(settings: Settings) -> None:
    ok = _worker_check({})
    assert ok.returncode == 0, ok.stderr
    # The connect timeout setting bounds the wait (1 s here instead of the default 10 s).
    no_temporal = _worker_check(
        {
            "SENTINEL_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
            "SENTINEL_TEMPORAL_CONNECT_TIMEOUT_SECONDS": "1",
        }
    )
    assert no_temporal.returncode == 1
    assert no_temporal.stderr.strip().count("\n") == 0
    assert "cannot reach Temporal" in no_temporal.stderr
    # A missing bucket is the deployment's configuration (ConfigurationError): exit 2, like a
    # TLS or webhook setting refused at start; exit 1 is for what is unreachable.
    no_bucket = _worker_check({"SENTINEL_MODELS_BUCKET": "missing-models"})
    assert no_bucket.returncode == 2
    assert "bucket 'missing-models' does not exist" in no_bucket.stderr


def test_raw_minio_client_sees_sha256_metadata(store: ObjectStore, settings: Settings) -> None:
    key = f"{_prefix()}/meta.txt"
    info = store.put_bytes(settings.data_bucket, key, b"abc")
    raw = Minio(settings.s3_endpoint, access_key="x", secret_key="y", secure=False)
    meta = raw.stat_object(settings.data_bucket, key).metadata
    assert meta["x-amz-meta-sha256"] == info.sha256 == hashlib.sha256(b"abc").hexdigest()
