"""Operator metrics of a worker process (Prometheus), defined once and updated by the stages.

Every metric lives in prometheus_client's process-wide registry; ``python -m workers`` serves
it on ``SENTINEL_METRICS_PORT`` (with the Temporal SDK's own metrics, see
:mod:`workers.telemetry`). Updating a metric is a few hundred nanoseconds and never does I/O,
so the stages update them whether or not anything is served. Label values are model and
dataset names, activity types and small fixed vocabularies: a bounded set per deployment.

Names follow Prometheus conventions (``_total`` is appended to counters on exposition,
``_seconds``/``_bytes`` units). ``deploy/k8s/components/monitoring`` (dashboard, alert rules)
uses these names; ``tests/deploy`` checks that every ``sentinel_*`` name used there exists here.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# ---------------------------------------------------------------------- training
TRAINING_EPOCH = Gauge(
    "sentinel_training_epoch", "Epochs completed by the model's newest training", ["model"]
)
TRAINING_EPOCHS = Gauge(
    "sentinel_training_epochs", "Epochs requested by the model's newest training", ["model"]
)
TRAINING_IMAGES_PER_SECOND = Gauge(
    "sentinel_training_images_per_second",
    "Training images per second in the last epoch (validation excluded)",
    ["model"],
)
TRAINING_RESUMES = Counter(
    "sentinel_training_resumes",
    "Training attempts that resumed from a stored checkpoint instead of starting over",
    ["model"],
)
CHECKPOINT_UPLOAD_SECONDS = Histogram(
    "sentinel_checkpoint_upload_seconds",
    "Time to upload one per-epoch checkpoint to object storage",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
CHECKPOINT_UPLOAD_BYTES = Counter(
    "sentinel_checkpoint_upload_bytes", "Bytes of checkpoints uploaded to object storage"
)
CHECKPOINT_UPLOAD_FAILURES = Counter(
    "sentinel_checkpoint_upload_failures", "Checkpoint uploads that failed (the next epoch retries)"
)
GPU_MEMORY_BYTES = Gauge(
    "sentinel_gpu_memory_bytes",
    "CUDA memory of this worker's training at the last epoch end (absent without a GPU)",
    ["device", "kind"],
)

# ---------------------------------------------------------------------- data and registry
ASSEMBLY_FINDINGS = Counter(
    "sentinel_assembly_findings",
    "Problems found (fixed or skipped) while assembling dataset snapshots, per kind",
    ["dataset", "kind"],
)
PUBLISH_OUTCOMES = Counter(
    "sentinel_publish_outcomes",
    "Publish results: promoted (production moved), registered (kept out of production), failed",
    ["model", "outcome"],
)

# ---------------------------------------------------------------------- activities (any stage)
ACTIVITIES_RUNNING = Gauge(
    "sentinel_activities_running", "Activities executing on this worker now", ["activity"]
)
ACTIVITY_RETRIES = Counter(
    "sentinel_activity_retries",
    "Activity attempts after the first (a retry after a failure, timeout or lost worker)",
    ["activity"],
)
ACTIVITY_FAILURES = Counter(
    "sentinel_activity_failures",
    "Activity attempts that ended with an error",
    ["activity", "error"],
)
ACTIVITY_LAST_HEARTBEAT = Gauge(
    "sentinel_activity_last_heartbeat_timestamp_seconds",
    "Unix time of the last heartbeat of each running activity (removed when it ends)",
    ["activity", "workflow_id"],
)

# ---------------------------------------------------------------------- workflows (CPU workers)
RETRAINS_RUNNING = Gauge(
    "sentinel_retrains_running", "Running retrains per stage (sampled by CPU workers)", ["stage"]
)
APPROVAL_WAITING_SECONDS = Gauge(
    "sentinel_approval_waiting_seconds",
    "How long a retrain has been waiting for approval (sampled; removed once decided)",
    ["model"],
)

# ---------------------------------------------------------------------- experiment tracking
TRACKING_RECORDS = Counter(
    "sentinel_tracking_records",
    "MLflow records by outcome: sent, lost (failed after retries), dropped (queue full)",
    ["outcome"],
)
TRACKING_BACKLOG = Gauge(
    "sentinel_tracking_backlog", "MLflow records waiting to be sent by this worker"
)
