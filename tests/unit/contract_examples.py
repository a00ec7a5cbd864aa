"""One example instance of every contract model (the round-trip test requires it).

Add an example here whenever you add a Contract subclass.
"""

from __future__ import annotations

from pydantic import BaseModel

from activities.contracts.inventory import InventoryRequest, InventoryResult

EXAMPLES: list[BaseModel] = [
    InventoryRequest(prefix="datasets/demo", cpu_task_queue="q"),
    InventoryResult(prefix="datasets/demo", objects=3, images=1, labels=1, total_bytes=10),
]
