"""Settings come from SENTINEL_* variables or mounted files, never from code or payloads."""

from __future__ import annotations

from pathlib import Path

import pytest

from activities.infra.settings import Settings


def test_defaults_name_the_queues_and_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SENTINEL_CPU_TASK_QUEUE", "SENTINEL_GPU_TASK_QUEUE", "SENTINEL_DATA_BUCKET"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings()
    assert (settings.cpu_task_queue, settings.gpu_task_queue) == ("sentinel-cpu", "sentinel-gpu")
    assert settings.data_bucket == "sentinel-data"


def test_environment_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTINEL_S3_ENDPOINT", "minio:9000")
    monkeypatch.setenv("SENTINEL_S3_SECURE", "true")
    settings = Settings()
    assert settings.s3_endpoint == "minio:9000"
    assert settings.s3_secure is True


def test_credentials_from_mounted_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENTINEL_S3_ACCESS_KEY", raising=False)
    monkeypatch.delenv("SENTINEL_S3_SECRET_KEY", raising=False)
    (tmp_path / "access").write_text("AKIA-FROM-FILE\n")
    (tmp_path / "secret").write_text("s3cr3t\n")
    monkeypatch.setenv("SENTINEL_S3_ACCESS_KEY_FILE", str(tmp_path / "access"))
    monkeypatch.setenv("SENTINEL_S3_SECRET_KEY_FILE", str(tmp_path / "secret"))
    settings = Settings()
    assert settings.s3_access_key is not None and settings.s3_secret_key is not None
    assert settings.s3_access_key.get_secret_value() == "AKIA-FROM-FILE"
    assert settings.s3_secret_key.get_secret_value() == "s3cr3t"
    assert "s3cr3t" not in repr(settings)


def test_unreadable_secret_file_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENTINEL_S3_ACCESS_KEY", raising=False)
    monkeypatch.setenv("SENTINEL_S3_ACCESS_KEY_FILE", "/nonexistent/access")
    with pytest.raises(ValueError, match="cannot read secret file /nonexistent/access"):
        Settings()
