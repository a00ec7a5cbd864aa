"""The demo job run by ``make demo`` on the embedded stack."""

from __future__ import annotations

import uuid

from temporalio.client import Client

from activities import synthetic
from activities.contracts.inventory import InventoryRequest
from activities.settings import Settings
from activities.storage import ObjectStore
from workflows.inventory import InventoryWorkflow


async def run_demo(client: Client, settings: Settings, store: ObjectStore) -> int:
    """Upload a synthetic dataset and count it through a workflow; returns an exit code."""
    prefix = "datasets/demo-shapes"
    summary = synthetic.upload(
        store, settings.data_bucket, prefix, layout="yolo", count=32, seed=0, verified=True
    )
    print(f"Uploaded {len(summary.image_keys)} images to s3://{settings.data_bucket}/{prefix}/")
    result = await client.execute_workflow(
        InventoryWorkflow.run,
        InventoryRequest(prefix=prefix, cpu_task_queue=settings.cpu_task_queue),
        id=f"inventory-demo-{uuid.uuid4().hex[:6]}",
        task_queue=settings.cpu_task_queue,
    )
    print(
        f"Inventory: {result.objects} objects, {result.images} images, {result.labels} labels, "
        f"{result.total_bytes} bytes"
    )
    return 0
