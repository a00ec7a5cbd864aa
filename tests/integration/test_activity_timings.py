"""Every activity a worker runs is timed: one record per execution, its costs named.

A real in-process CPU worker (``workers.factory.build_worker``, with its timing interceptor)
runs the dataset validation workflow against the real S3 server; the record is read back
from the process (:func:`activities.infra.timings.recent`), as ``bench/overhead.py`` does.
"""

from __future__ import annotations

import uuid

from temporalio.client import Client

from activities.contracts import names
from activities.contracts.dataset import AssembleRequest, MinCounts
from activities.infra import timings
from activities.infra.storage import ObjectStore
from tests.helpers.stack import Queues
from workers.dev import synthetic
from workflows.client.api import SentinelClient


async def test_a_sync_activity_is_timed_on_its_own_thread_with_its_costs_named(
    client: Client, queues: Queues, store: ObjectStore, run_workers
) -> None:
    settings = queues.settings
    dataset = f"timings-{uuid.uuid4().hex[:8]}"
    prefix = f"datasets/{dataset}"
    synthetic.upload(store, settings.data_bucket, prefix, layout="yolo", count=6, size=32,
                     verified=True)  # fmt: skip
    request = AssembleRequest(
        dataset=dataset, prefix=prefix, min_counts=MinCounts(train=0, val=0, test=0)
    )
    async with run_workers(("cpu",)):
        validation = await SentinelClient(client, settings).validate_dataset(request)
    assert validation.listed == 14  # 6 images, 6 labels, data.yaml, the verified list

    records = [
        r
        for r in timings.recent()
        if r.stage == names.VALIDATE_DATASET and r.run.startswith(f"validate-{dataset}-")
    ]
    assert len(records) == 1
    record = records[0]
    assert record.attempt == 1
    # The named costs of an inspection, each once, all timed on the activity's thread (a
    # sync activity runs in an executor thread: none of them is a "bg." cost).
    for cost in ("list", "read_layout", "verified_list", "fetch_images", "image_checks"):
        assert record.counts[cost] == 1, cost
    assert not [name for name in record.seconds if name.startswith("bg.")]
    inside = sum(record.seconds[c] for c in ("list", "read_layout", "fetch_images"))
    assert 0 < inside <= record.wall
