"""Which workflows and activities each kind of worker serves.

CPU workers: workflows (cheap, deterministic) and data/registry activities.
GPU workers: training and evaluation only, so a GPU never waits behind a dataset listing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from activities.settings import Settings
from activities.storage import ObjectStore

QueueKind = Literal["cpu", "gpu"]


def workflows() -> list[type]:
    """Every workflow class (registered on CPU workers)."""
    from workflows.inventory import InventoryWorkflow

    return [InventoryWorkflow]


def activities(kind: QueueKind, settings: Settings, store: ObjectStore) -> list[Callable[..., Any]]:
    """Activity callables for one queue kind, bound to ``settings`` and ``store``."""
    if kind == "cpu":
        from activities.inventory import InventoryActivities

        inventory = InventoryActivities(settings, store)
        return [inventory.inventory_dataset]
    if kind == "gpu":
        return []
    raise ValueError(f"unknown queue kind {kind!r}: use 'cpu' or 'gpu'")


def parse_queues(text: str) -> Sequence[QueueKind]:
    """``"cpu,gpu"`` -> ``("cpu", "gpu")``; a clear error for anything else."""
    kinds = [part.strip() for part in text.split(",") if part.strip()]
    bad = [k for k in kinds if k not in ("cpu", "gpu")]
    if bad or not kinds:
        raise ValueError(f"invalid queues {text!r}: use 'cpu', 'gpu' or 'cpu,gpu'")
    return tuple(dict.fromkeys(kinds))  # type: ignore[return-value]
