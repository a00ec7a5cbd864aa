"""The embedded stack keeps its objects: a restart of ``python -m workers.dev`` keeps datasets
and a published model, which still loads verified (the registry's sha256 check)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.registry import load_registry_model
from activities.registry.core import Registry
from activities.registry.publish import Publisher
from tests.helpers.publishing import stored_publish_request
from tests.helpers.stack import REPO_ROOT
from workers.dev.stack import free_port, port_in_use

pytestmark = pytest.mark.timeout(240)


@contextmanager
def _stack(state_dir: Path, ports: list[str]) -> Iterator[list[str]]:
    """``python -m workers.dev`` until it says the workers run; Ctrl-C and a clean exit after."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.dev", "--state-dir", str(state_dir), *ports],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("Workers running"):
            break
    try:
        assert proc.poll() is None, (seen, proc.communicate(timeout=30))
        yield seen
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert "Stopping workers" in out


def test_restart_keeps_datasets_and_a_published_model_that_loads_verified(
    tmp_path: Path,
) -> None:
    # S3's persistence alone: no MLflow server (its artifacts bucket would be a fourth bucket).
    ports = ["--temporal-port", str(free_port()), "--ui-port", str(free_port()), "--no-mlflow"]
    s3_port = free_port()
    ports += ["--s3-port", str(s3_port)]
    settings = Settings(
        s3_endpoint=f"127.0.0.1:{s3_port}",
        s3_access_key="sentinel-dev",  # type: ignore[arg-type]  # pydantic coerces to SecretStr
        s3_secret_key="sentinel-dev-secret",  # type: ignore[arg-type]
        cache_dir=tmp_path / "cache",
    )
    model, payload = "kept", os.urandom(64 * 1024)

    with _stack(tmp_path / "state", ports) as seen:
        assert any(f"S3 objects kept in {tmp_path / 'state' / 's3'}" in line for line in seen)
        store = ObjectStore.from_settings(settings)
        store.put_bytes(settings.data_bucket, "datasets/kept/images/a.png", b"png bytes")
        published = Publisher(Registry(store, settings.models_bucket)).publish(
            stored_publish_request(store, settings, model, payload)
        )
        assert (published.version, published.promoted) == (1, True)
        stored = sum(len(list(store.list(bucket, ""))) for bucket in settings.buckets)
    assert not port_in_use(s3_port), "S3 server left running"

    with _stack(tmp_path / "state", ports) as seen:
        store = ObjectStore.from_settings(settings)
        assert store.get_bytes(settings.data_bucket, "datasets/kept/images/a.png") == b"png bytes"
        loaded = load_registry_model(store, settings, model, "production", tmp_path / "m.pt")
        assert loaded.read_bytes() == payload
        assert Registry(store, settings.models_bucket).production_version(model) == 1
    log = (tmp_path / "state" / "s3" / "s3.log").read_text()
    assert "restored 0 objects" in log, log[-2000:]  # the first start found nothing
    assert f"restored {stored} objects in 3 buckets" in log, log[-2000:]
