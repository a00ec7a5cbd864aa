"""Training helpers for tests and ``bench/recovery.py``: a real snapshot, heartbeat details."""

from __future__ import annotations

import json
import uuid
from typing import Any

from activities.contracts.dataset import SnapshotRef
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore


def make_snapshot(
    settings: Settings, store: ObjectStore, *, count: int = 16, seed: int = 7, size: int = 96
) -> SnapshotRef:
    """Upload ``count`` synthetic images and assemble a train/val snapshot of them."""
    from temporalio.testing import ActivityEnvironment

    from activities.contracts.dataset import AssembleRequest, MinCounts, SplitRatios
    from activities.dataset import DatasetActivities
    from workers.dev import synthetic

    tag = uuid.uuid4().hex[:8]
    prefix = f"datasets/train-{tag}"
    synthetic.upload(
        store, settings.data_bucket, prefix, layout="yolo", count=count, seed=seed, size=size
    )
    request = AssembleRequest(
        dataset=f"shapes-{tag}",
        prefix=prefix,
        split_ratios=SplitRatios(train=0.75, val=0.25, test=0.0),
        min_counts=MinCounts(train=1, val=1, test=0),
    )
    activities = DatasetActivities(settings, store)
    result = ActivityEnvironment().run(activities.assemble_dataset, request)
    return result.snapshot


def heartbeat_details(description: Any) -> dict[str, Any] | None:
    """The pending train activity's last heartbeat details from ``handle.describe()``."""
    pending = description.raw_description.pending_activities
    if not pending or not pending[0].heartbeat_details.payloads:
        return None
    return json.loads(pending[0].heartbeat_details.payloads[0].data)
