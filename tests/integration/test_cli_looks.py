"""The everyday verbs as a user types them: ``data validate`` on the real stack (real workers,
real S3), bad input named before any connection, an unreachable Temporal within seconds.

``retrain logs`` and ``retrain list`` are checked after a real run in ``test_retrain_ops.py``.
"""

from __future__ import annotations

import uuid

import pytest

from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from tests.helpers.cli import sentinel_cli
from tests.helpers.listener import recording_listener
from tests.helpers.stack import Queues, RunWorkers
from workers.dev import synthetic

pytestmark = pytest.mark.timeout(180)


async def test_data_validate_tabulates_and_stores_nothing(
    queues: Queues, run_workers: RunWorkers, settings: Settings, store: ObjectStore
) -> None:
    good, small = (f"datasets/looks-{uuid.uuid4().hex[:6]}-{n}" for n in ("good", "small"))
    synthetic.upload(store, settings.data_bucket, good, layout="yolo", count=24, verified=True)
    uploaded = synthetic.upload(
        store, settings.data_bucket, small, layout="yolo", count=3, verified=True
    )
    image = next(key for key in uploaded.keys if key.endswith(".png"))
    stem = image.rsplit("/", 1)[-1].removesuffix(".png")  # one bad label line
    store.put_bytes(settings.data_bucket, f"{small}/labels/{stem}.txt", b"7 0.5 0.5 0.2 0.2\n")
    async with run_workers(kinds=("cpu",)):
        code, out, err = await sentinel_cli(queues, "data", "validate", "--prefix", good)
        assert code == 0, (out, err)
        assert "24 images, 0 unverified, 24 usable" in out and "can train" in out
        assert "train" in out and "circle" in out  # images and boxes per class and split

        code, out, err = await sentinel_cli(queues, "data", "validate", "--prefix", small)
        assert code == 2, (out, err)
        assert "class_out_of_range" in out and f"{small}/labels" not in err
        assert "cannot train" in out and "too few images" in out

        empty = f"datasets/looks-{uuid.uuid4().hex[:6]}-none"
        code, out, _ = await sentinel_cli(queues, "data", "validate", "--prefix", empty)
        assert code == 2 and "is empty" in out
    # Validation stores no snapshot (and the registry was never involved).
    for prefix in (good, small):
        dataset = prefix.rsplit("/", 1)[-1]
        assert not list(store.list(settings.data_bucket, f"snapshots/{dataset}/"))


async def test_bad_input_is_named_before_any_connection(queues: Queues) -> None:
    with recording_listener() as temporal:  # where Temporal would be: it records any knock
        env = {"SENTINEL_TEMPORAL_ADDRESS": temporal.address}
        code, _, err = await sentinel_cli(
            queues, "retrain", "start", "--model", "m", "--prefix", "/", env=env
        )
        assert code == 2 and "prefix" in err and "'/'" in err and "Temporal" not in err, err
        code, _, err = await sentinel_cli(queues, "retrain", "logs", "Not_A_Model", env=env)
        assert code == 2 and "invalid model name 'Not_A_Model'" in err, err
    assert temporal.times == [], "the CLI tried to connect before naming the bad input"


async def test_unreachable_temporal_is_reported_within_seconds(queues: Queues) -> None:
    # A port that hangs up on every connection: the client retries until its own deadline.
    with recording_listener() as temporal:
        code, _, err = await sentinel_cli(
            queues, "retrain", "progress", "anything",
            env={"SENTINEL_TEMPORAL_ADDRESS": temporal.address},
        )  # fmt: skip
    assert code == 4 and err.startswith(f"error: cannot reach Temporal at {temporal.address}"), err
    # The CLI gives up after its 3 s default (workers wait 10 s): judged by the attempts the
    # port saw, not by the CLI process's wall time (interpreter start-up varies with load).
    assert len(temporal.times) >= 2, temporal.times
    assert temporal.span < 6, f"retried for {temporal.span:.1f}s (CLI default: 3 s)"
