"""Around the pipeline: CLI entry point, controller schedule (recorded histories are replayed
in ``tests/histories/test_replay.py``).

A Temporal server killed and restarted mid-training is covered by tests/faults.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.contracts.controller import CheckResult, ControllerConfig
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from tests.helpers.cli import sentinel_cli
from tests.helpers.factories import tiny_retrain_request
from tests.helpers.stack import Queues, RunWorkers, sentinel_for
from workers.dev import synthetic
from workers.dev.stack import free_port
from workflows.controller import RetrainCheckWorkflow

pytestmark = pytest.mark.timeout(420)


@pytest.fixture(scope="module")
def prefix(settings: Settings, store: ObjectStore) -> str:
    prefix = f"datasets/ops-{uuid.uuid4().hex[:6]}"
    synthetic.upload(
        store, settings.data_bucket, prefix, layout="yolo", count=24, seed=5, verified=True
    )
    return prefix


async def test_cli_verbs_through_the_entry_point(
    client: Client, queues: Queues, run_workers: RunWorkers, prefix: str, tmp_path: Path
) -> None:
    request = tiny_retrain_request(prefix, queues, epochs=1)
    model = request.model_name
    request_file = tmp_path / "request.json"
    request_file.write_text(request.model_dump_json())
    async with run_workers():
        code, out, err = await sentinel_cli(
            queues, "retrain", "start", "--request", str(request_file), "--follow"
        )
        assert code == 0, (out, err)
        assert f"started retrain-{model}" in out and f"{model} v1" in out
        code, out, _ = await sentinel_cli(queues, "retrain", "progress", model)
        assert code == 0 and "succeeded" in out
        code, _, err = await sentinel_cli(queues, "retrain", "approve", model)
        assert code == 1 and "already completed" in err
        code, out, _ = await sentinel_cli(queues, "models", "list", model)
        assert code == 0 and "v1" in out and "1 versions" in out
        code, out, _ = await sentinel_cli(queues, "models", "show", model)
        assert code == 0 and json.loads(out)["version"] == 1
        code, out, _ = await sentinel_cli(queues, "retrain", "list", "--limit", "50")
        row = next(line for line in out.splitlines() if f"retrain-{model}" in line)
        assert code == 0 and "succeeded" in row and "1/1" in row and "v1" in row, out
        code, out, err = await sentinel_cli(queues, "retrain", "logs", model)
        assert code == 0 and f"runs/retrain-{model}/logs/attempt-1.log" in err, err
        assert f"attempt 1 of retrain-{model}" in out and "epoch 1/1" in out, out
        assert "finished: 1/1 epochs (completed)" in out, out
    code, _, err = await sentinel_cli(
        queues, "retrain", "start", "--model", "Bad Name!", "--prefix", prefix
    )
    assert code == 2 and "Bad Name!" in err and err.count("\n") == 1


async def test_every_verb_has_help() -> None:
    from workflows.client.cli import build_parser

    parser = build_parser()
    verbs = {
        "retrain": [
            "start",
            "progress",
            "follow",
            "stop-early",
            "cancel",
            "result",
            "approve",
            "reject",
            "list",
            "logs",
        ],
        "data": ["validate"],
        "models": ["list", "show", "promote", "rollback", "import"],
        "controller": ["apply", "trigger", "pause", "unpause"],
        "weights": ["add", "list"],
    }
    for group, names in verbs.items():
        for verb in names:
            with pytest.raises(SystemExit) as info:
                parser.parse_args([group, verb, "--help"])
            assert info.value.code == 0


async def test_cli_reports_unreachable_temporal(queues: Queues) -> None:
    env_address = f"127.0.0.1:{free_port()}"
    os.environ["SENTINEL_TEMPORAL_ADDRESS"], saved = (
        env_address,
        os.environ["SENTINEL_TEMPORAL_ADDRESS"],
    )
    # Give up after 1 s instead of the default 10 s: the path under test is the same.
    os.environ["SENTINEL_TEMPORAL_CONNECT_TIMEOUT_SECONDS"] = "1"
    try:
        code, _, err = await sentinel_cli(queues, "retrain", "progress", "anything")
    finally:
        os.environ["SENTINEL_TEMPORAL_ADDRESS"] = saved
        del os.environ["SENTINEL_TEMPORAL_CONNECT_TIMEOUT_SECONDS"]
    assert code == 4 and err.startswith(f"error: cannot reach Temporal at {env_address}")


async def test_controller_starts_a_retrain_only_past_the_threshold(
    client: Client,
    queues: Queues,
    run_workers: RunWorkers,
    settings: Settings,
    store: ObjectStore,
) -> None:
    prefix = f"datasets/ctl-{uuid.uuid4().hex[:6]}"
    synthetic.upload(
        store, settings.data_bucket, prefix, layout="yolo", count=20, seed=3, verified=True
    )
    # 4 more images that nobody verified yet: they must not count.
    synthetic.upload(store, settings.data_bucket, prefix, layout="yolo", count=4, seed=3, start=20)
    request = tiny_retrain_request(prefix, queues, epochs=1)
    config = ControllerConfig(request=request, threshold=24)
    sentinel = sentinel_for(client, queues)

    async def check() -> CheckResult:
        return await client.execute_workflow(
            RetrainCheckWorkflow.run,
            config,
            id=f"check-{uuid.uuid4().hex[:8]}",
            task_queue=queues.cpu,
        )

    async with run_workers():
        below = await check()
        assert (below.new_verified, below.started) == (20, False)
        synthetic.upload(
            store,
            settings.data_bucket,
            prefix,
            layout="yolo",
            count=4,
            seed=3,
            start=20,
            verified=True,
        )
        above = await check()
        assert (above.new_verified, above.started) == (24, True)
        assert above.workflow_id == f"retrain-{request.model_name}"
        again = await check()  # while it runs: never a second retrain
        assert not again.started and "already running" in again.reason
        result = await sentinel.result(request.model_name)
        assert result.version == 1
        after = await check()  # production now holds those images
        assert (after.new_verified, after.started) == (0, False)
        # The schedule: created, then updated in place (idempotent), then triggered.
        schedule_id = await sentinel.apply_controller(config, timedelta(hours=1))
        assert schedule_id == await sentinel.apply_controller(config, timedelta(hours=2))
        described = await client.get_schedule_handle(schedule_id).describe()
        assert described.schedule.spec.intervals[0].every == timedelta(hours=2)
        await sentinel.trigger_controller(request.model_name)
        await sentinel.pause_controller(request.model_name)
        described = await client.get_schedule_handle(schedule_id).describe()
        assert described.schedule.state.paused
        await client.get_schedule_handle(schedule_id).delete()
