"""Contracts of the foundation slice: count what a dataset prefix holds."""

from __future__ import annotations

from activities.contracts.common import Contract, ObjectKey


class InventoryRequest(Contract):
    """Count the objects under ``prefix`` of the data bucket."""

    prefix: ObjectKey
    cpu_task_queue: str = "sentinel-cpu"


class InventoryResult(Contract):
    """Counts by kind; nothing large."""

    prefix: str
    objects: int
    images: int
    labels: int
    total_bytes: int
