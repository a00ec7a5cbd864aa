"""History events of a real short retrain, per kind: how much an epoch adds to a run's history.

Starts its own stack (Temporal dev server, moto S3), uploads 24 synthetic images, runs one
real retrain of ``--epochs`` epochs (tiny CPU training) on in-process workers, and counts the
run's history events. Prints::

    history_events=<n>
    history_signals=<n>
    history_events_per_epoch=<x>   events beyond those of a 1-epoch run, per extra epoch

(runs a second, 1-epoch retrain for that baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))  # after PYTHONPATH: this also measures other checkouts

from temporalio.api.enums.v1 import EventType  # noqa: E402

from activities.infra.connection import connect  # noqa: E402
from tests.helpers.factories import tiny_retrain_request  # noqa: E402
from tests.helpers.stack import embedded_stack, unique_queues  # noqa: E402
from workers.dev import synthetic  # noqa: E402
from workers.factory import build_worker  # noqa: E402
from workflows.client.api import SentinelClient  # noqa: E402


async def _retrain(
    sentinel: SentinelClient, prefix: str, queues: object, epochs: int
) -> Counter[str]:
    request = tiny_retrain_request(prefix, queues, epochs=epochs)  # type: ignore[arg-type]
    await sentinel.start_retrain(request)
    await sentinel.result(request.model_name)
    kinds: Counter[str] = Counter()
    async for event in sentinel.handle(request.model_name).fetch_history_events():
        kinds[EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")] += 1
    return kinds


async def main(epochs: int) -> int:
    with embedded_stack("history", access_key="bench", secret_key="bench-secret") as stack:
        _, settings, store = stack
        prefix = "datasets/history"
        synthetic.upload(store, settings.data_bucket, prefix, layout="yolo", count=24, seed=3,
                         verified=True)  # fmt: skip
        queues = unique_queues(settings, "history")
        client = await connect(queues.settings)
        sentinel = SentinelClient(client, queues.settings)
        workers = [
            build_worker(client, queues.settings, kind, store=store) for kind in ("cpu", "gpu")
        ]  # type: ignore[arg-type]
        tasks = [asyncio.create_task(w.run()) for w in workers]
        try:
            long_run = await _retrain(sentinel, prefix, queues, epochs)
            short_run = await _retrain(sentinel, prefix, queues, 1)
        finally:
            await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
            await asyncio.gather(*tasks, return_exceptions=True)
    total, short = sum(long_run.values()), sum(short_run.values())
    for kind, count in sorted(long_run.items()):
        print(f"  {kind:45s} {count:4d}  (1-epoch run: {short_run.get(kind, 0)})")
    print(f"history_events={total}")
    print(f"history_signals={long_run.get('WORKFLOW_EXECUTION_SIGNALED', 0)}")
    print(f"history_events_per_epoch={(total - short) / max(1, epochs - 1):.2f}")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    sys.exit(asyncio.run(main(parser.parse_args().epochs)))
