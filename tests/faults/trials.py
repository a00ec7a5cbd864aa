"""What every fault trial shares: its request, the gate policy, and how it is judged.

:func:`judge` audits the object store from the outside (:mod:`tests.faults.audit`), adds the
trial to the table (:mod:`tests.faults.conftest`) and returns what is wrong, so that a failed
trial is counted before the test asserts.
"""

from __future__ import annotations

import random
import time
import uuid

from activities.contracts.dataset import MinCounts, SplitRatios
from activities.contracts.gate import GatePolicy
from activities.contracts.retrain import RetrainRequest, RetrainResult
from activities.dataset.split import hash_split
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from tests.faults.audit import Found, audit, expected_production
from tests.faults.conftest import TABLE, Row
from tests.helpers.factories import tiny_retrain_request
from tests.helpers.stack import Queues
from workers.dev import synthetic

HEARTBEAT = 8.0
"""Heartbeat timeout (s) of the killed runs: how long a SIGKILLed worker's activity takes to
be noticed. Activities heartbeat at least every second or two of real progress on a warm
worker; at 6 s, evaluations on 2 cores loaded 8-17 deep timed out without a kill."""
SERVER_HEARTBEAT = 12.0
"""Heartbeat timeout of the Temporal-restart runs: a restart (1-4 s down, ~2 s to start) must
not look like a dead worker."""
MAX_DRAWS = 5
"""Draws of one trial at most; a trial whose fault keeps missing its stage fails."""
POLICY = GatePolicy(floor=0.0)
"""Every fault run's gate: a first version is promoted unless its ONNX parity check failed."""


def fault_request(
    prefix: str, queues: Queues, epochs: int = 1, heartbeat: float = HEARTBEAT
) -> RetrainRequest:
    return tiny_retrain_request(
        prefix,
        queues,
        epochs=epochs,
        gate=POLICY,
        stage_heartbeat_timeout_seconds=heartbeat,
        train_heartbeat_timeout_seconds=heartbeat,
    )


def fresh_dataset(store: ObjectStore, settings: Settings, rng: random.Random) -> str:
    """24 verified images never seen before (a seeded new set): nothing of them is cached, so
    assembling them downloads and decodes each one, a stage long enough to land a fault in."""
    prefix = f"datasets/faults-{uuid.uuid4().hex[:6]}"
    seed = rng.randint(1000, 10**6)
    while not _splits_enough(seed):  # splits follow the names, and names the seed
        seed += 1
    synthetic.upload(
        store, settings.data_bucket, prefix, layout="yolo", count=24, seed=seed, verified=True
    )
    return prefix


def _splits_enough(seed: int) -> bool:
    """Whether the 24 images of ``seed`` fill every split to the request's minimum counts."""
    names = [f"images/{synthetic.stem_for(seed, index)}.png" for index in range(24)]
    splits = [hash_split(name, SplitRatios()) for name in names]
    minimum = MinCounts(train=4, val=1, test=1)  # tiny_retrain_request's
    return all(splits.count(split) >= getattr(minimum, split) for split in ("train", "val", "test"))


def judge(
    store: ObjectStore,
    settings: Settings,
    kind: str,
    started: float,
    model: str,
    result: RetrainResult | None,
    *,
    proven: bool,
) -> tuple[Found, list[str]]:
    """Audit the store, add the trial to the table; returns what is wrong (asserted later)."""
    found = audit(store, settings, model)
    meta = found.metadata.get(1)
    want = expected_production(meta, POLICY) if meta else None
    row = TABLE.setdefault(kind, Row())
    row.trials += 1
    row.landed += proven
    row.seconds += time.monotonic() - started
    row.completed += result is not None
    row.duplicates += len(found.versions) > 1
    row.lost_production += found.production != want
    row.orphans += len(found.orphans)
    row.bad_artifacts += len(found.broken)
    row.notes.extend(found.orphans[:3] + found.broken[:3])
    problems = [] if proven else ["the fault is not proven to have landed in its stage"]
    if result is None or found.versions != [1]:
        problems.append(f"completed={result is not None}, versions {found.versions}")
    if found.production != want:
        problems.append(f"production {found.production}, the gate policy says {want}")
    problems += [f"orphan {key}" for key in found.orphans]
    problems += found.broken
    return found, [f"{kind}: {problem}" for problem in problems]


def redraw(kind: str, why: str) -> None:
    row = TABLE.setdefault(kind, Row())
    row.redrawn += 1
    row.notes.append(f"re-drawn: {why}")
