"""Process-wide configuration, read from the environment (prefix ``SENTINEL_``) or files.

Secrets (S3 keys, Temporal API key, the webhook URL and its signing key) come only from here:
never from workflow inputs, so they never appear in Temporal history or the Web UI.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _read_secret_file(path: Path | None) -> SecretStr | None:
    if path is None:
        return None
    try:
        return SecretStr(path.read_text().strip())
    except OSError as exc:
        raise ValueError(f"cannot read secret file {path}: {exc.strerror}") from exc


class Settings(BaseSettings):
    """Every knob of a Sentinel Training process. Env var = ``SENTINEL_`` + field name, upper."""

    model_config = SettingsConfigDict(env_prefix="SENTINEL_", frozen=True, extra="ignore")

    # Temporal
    temporal_address: str = Field("localhost:7233", description="Temporal frontend host:port")
    temporal_namespace: str = Field("default", description="Temporal namespace")
    temporal_tls: bool = Field(False, description="Connect to Temporal over TLS")
    temporal_tls_cert_file: Path | None = Field(None, description="mTLS client cert (PEM) file")
    temporal_tls_key_file: Path | None = Field(None, description="mTLS client key (PEM) file")
    temporal_tls_ca_file: Path | None = Field(
        None, description="CA bundle (PEM) that signs Temporal's certificate (default: system CAs)"
    )
    temporal_tls_server_name: str | None = Field(
        None, description="Name Temporal's certificate must carry (default: the address's host)"
    )
    temporal_api_key_file: Path | None = Field(None, description="File holding a Temporal API key")
    temporal_connect_timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="How long to keep trying to reach Temporal, then fail"
    )
    cpu_task_queue: str = Field("sentinel-cpu", description="Queue for data/export/publish work")
    gpu_task_queue: str = Field("sentinel-gpu", description="Queue for training and evaluation")

    # Object storage
    s3_endpoint: str = Field("localhost:9000", description="S3 endpoint host:port (no scheme)")
    s3_access_key: SecretStr | None = Field(None, description="S3 access key")
    s3_secret_key: SecretStr | None = Field(None, description="S3 secret key")
    s3_access_key_file: Path | None = Field(None, description="File holding the S3 access key")
    s3_secret_key_file: Path | None = Field(None, description="File holding the S3 secret key")
    s3_secure: bool = Field(False, description="Use HTTPS to reach S3")
    s3_region: str | None = Field(None, description="S3 region (optional)")
    s3_public_url: str | None = Field(
        None, description="S3 URL users reach, for download links (default: the endpoint)"
    )
    data_bucket: str = Field("sentinel-data", description="Bucket with datasets/ and snapshots/")
    runs_bucket: str = Field("sentinel-runs", description="Bucket with runs/ (checkpoints)")
    models_bucket: str = Field(
        "sentinel-models", description="Bucket with the model registry and weights catalog"
    )

    # Trust
    signing_key_file: Path | None = Field(
        None,
        description="Signing keys (KEY_ID:SECRET lines, the last signs) for registry, catalog "
        "and checkpoints",
    )

    # Training
    default_base: str | None = Field(
        None,
        description="Base of requests naming none, e.g. weights:yolo11n.pt (unset: yolov8n.yaml)",
    )
    checkpoint_interval_seconds: float = Field(
        300.0,
        description="Least seconds between training checkpoints, also mid-epoch: bounds the "
        "training a killed worker loses (0: every epoch end, none mid-epoch)",
    )

    # Local
    cache_dir: Path = Field(
        Path.home() / ".cache" / "sentinel", description="Local cache for datasets and weights"
    )
    cache_max_gb: float | None = Field(
        None, gt=0, description="Bound of the dataset cache; least recently used evicted"
    )

    # Resource bounds
    max_document_mb: float = Field(
        256.0, gt=0, description="Largest object read whole (COCO JSON, lists, manifests)"
    )
    max_image_mb: float = Field(64.0, gt=0, description="Largest image file accepted")
    max_image_megapixels: float = Field(
        100.0, gt=0, description="Largest image accepted, in pixels (decompression bombs)"
    )

    # Retention (`sentinel registry gc`)
    retention_grace_hours: float = Field(
        24.0, ge=0, description="Age before orphan claims and partial versions are swept"
    )
    retention_failed_checkpoints: int = Field(
        1, ge=0, description="Checkpoints kept of a run that failed or was canceled"
    )
    retention_export_days: float = Field(
        7.0, ge=0, description="Days before exports of runs that published nothing expire"
    )

    # Workers
    worker_queues: str = Field(
        "cpu,gpu", description="Queues this worker serves: 'cpu', 'gpu' or 'cpu,gpu'"
    )
    cpu_concurrency: int = Field(4, ge=1, description="Concurrent activities on the CPU queue")
    gpu_concurrency: int = Field(1, ge=1, description="Concurrent trainings per GPU worker")
    heartbeat_throttle_seconds: float = Field(
        2.0, gt=0, description="Max interval between heartbeats sent (cancel latency bound)"
    )
    graceful_shutdown_seconds: float = Field(
        90.0, ge=0, description="On SIGTERM, time running activities get to finish/checkpoint"
    )

    # Batch prediction
    predict_shard_size: int = Field(
        500, ge=1, description="Images per prediction shard (one activity, one retry unit)"
    )

    # Notifications
    webhook_url: SecretStr | None = Field(
        None, description="Webhook for run and production events: https://, a secret (optional)"
    )
    webhook_url_file: Path | None = Field(None, description="File holding the webhook URL")
    webhook_secret_file: Path | None = Field(
        None, description="File holding the key that signs webhook deliveries (HMAC-SHA256)"
    )
    webhook_ca_file: Path | None = Field(
        None, description="CA bundle (PEM) of the webhook's HTTPS server (default: system CAs)"
    )

    # Experiment tracking (MLflow), optional: unset means no tracking at all.
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow tracking server URL; unset: no experiment tracking"
    )
    mlflow_experiment_prefix: str = Field(
        "sentinel/", max_length=200, description="MLflow experiment of a model: prefix + model name"
    )
    mlflow_timeout_seconds: float = Field(
        30.0, gt=0, le=600, description="Per-request timeout of MLflow calls (background thread)"
    )

    # Operator metrics (Prometheus)
    metrics_port: int = Field(
        0, ge=0, le=65535, description="Port of the workers' Prometheus /metrics; 0: off"
    )

    @model_validator(mode="after")
    def _credentials_from_files(self) -> Settings:
        for field, file_field in (
            ("s3_access_key", "s3_access_key_file"),
            ("s3_secret_key", "s3_secret_key_file"),
            ("webhook_url", "webhook_url_file"),
        ):
            if getattr(self, field) is None and getattr(self, file_field) is not None:
                object.__setattr__(self, field, _read_secret_file(getattr(self, file_field)))
        return self

    @property
    def buckets(self) -> tuple[str, str, str]:
        return (self.data_bucket, self.runs_bucket, self.models_bucket)

    @property
    def max_document_bytes(self) -> int:
        return int(self.max_document_mb * 2**20)

    @property
    def max_image_bytes(self) -> int:
        return int(self.max_image_mb * 2**20)

    @property
    def max_image_pixels(self) -> int:
        return int(self.max_image_megapixels * 1_000_000)

    @property
    def cache_max_bytes(self) -> int | None:
        return None if self.cache_max_gb is None else int(self.cache_max_gb * 2**30)

    def temporal_api_key(self) -> str | None:
        secret = _read_secret_file(self.temporal_api_key_file)
        return secret.get_secret_value() if secret else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this process (read once)."""
    return Settings()
