"""``bench/recovery.py``'s long-epoch case: lost work bounded by time, not by the epoch.

Two epochs of a minute or more each (the dataset is sized for it on this machine). Worker A
trains with ``SENTINEL_CHECKPOINT_INTERVAL_SECONDS=<interval>``; at 80% of the second epoch
it is SIGKILLed and standby B resumes. Measured:

* ``seconds_rerun_after_kill``: training A had done past the checkpoint B resumed from,
  i.e. what is trained twice: kill time minus the time A had reached the resumed position
  (its epoch start plus the position's share of the epoch, at A's measured pace);
* ``seconds_rerun_after_kill_epoch_checkpoints``: the same with checkpoints at epoch ends
  only (before mid-epoch checkpoints): kill time minus the epoch's start;
* the cost of one mid-epoch checkpoint, from worker A's log: the copy on the training
  thread, the serialisation and the upload (both on the uploader's thread), its size.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.client import Client, WorkflowHandle

from activities.contracts.training import Hyperparameters, TrainRequest
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from tests.helpers.training import heartbeat_details, make_snapshot

KILL_AT = 0.8
"""Where in the second epoch the worker is killed."""

_COPIED = re.compile(r"mid-epoch state at .* copied in ([\d.]+)s")
_UPLOADED = re.compile(r"checkpoint epoch .* serialised in ([\d.]+)s, uploaded to .* in ([\d.]+)s "
                       r"\((\d+) bytes\)")  # fmt: skip
_RESUMED = re.compile(rb"resuming from epoch (\d+)(?: \+ (\d+) samples)?")

Poll = Callable[..., Awaitable[None]]


def checkpoint_costs(log_text: str) -> dict[str, float]:
    """Mean cost of one mid-epoch checkpoint from a worker's log (seconds, bytes)."""
    copied = [float(m.group(1)) for m in _COPIED.finditer(log_text)]
    uploads = [m.groups() for m in _UPLOADED.finditer(log_text)]
    mid = [(float(s), float(u), int(b)) for s, u, b in uploads if float(s) > 0]

    def mean(values: list[float]) -> float:
        return statistics.fmean(values) if values else float("nan")

    return {
        "checkpoints_mid_epoch": float(len(copied)),
        "checkpoint_copy_seconds": mean(copied),
        "checkpoint_serialise_seconds": mean([s for s, _, _ in mid]),
        "checkpoint_upload_seconds": mean([u for _, u, _ in mid]),
        "checkpoint_mb": mean([b / 1e6 for _, _, b in mid]),
    }


async def long_epoch_case(
    client: Client,
    settings: Settings,
    store: ObjectStore,
    args: Any,
    *,
    start: Callable[[TrainRequest], Awaitable[WorkflowHandle]],
    worker: Callable[[str, dict[str, str]], Any],
    poll: Poll,
) -> dict[str, float]:
    """Run the case; returns its figures (see the module docstring)."""
    snapshot = make_snapshot(
        settings, store, count=args.long_images, seed=args.seed, size=args.long_image_px
    )
    train_samples = snapshot.counts.get("train", 0)
    hp = Hyperparameters(
        epochs=2, imgsz=args.long_imgsz, batch=args.batch, seed=args.seed, device="cpu",
        extra={"mosaic": 0.0},
    )  # fmt: skip
    request = TrainRequest(
        snapshot=snapshot, model_name="shapes", hyperparameters=hp,
        heartbeat_timeout_seconds=args.heartbeat_timeout,
    )  # fmt: skip
    env = {"SENTINEL_CHECKPOINT_INTERVAL_SECONDS": str(args.interval)}
    node_a, node_b = worker("long-a", env), None
    try:
        handle = await start(request)
        marks: dict[str, float] = {}

        async def training(epoch_done: int) -> bool:
            details = heartbeat_details(await handle.describe()) or {}
            if details.get("attempt") != 1 or details.get("phase") not in ("train", "checkpoint"):
                return False
            done = int((details.get("summary") or {}).get("epoch") or 0)
            if done >= epoch_done:
                marks.setdefault(f"epoch{epoch_done}", time.monotonic())
                return True
            return False

        await poll(lambda: training(0), "the long run's training loop", timeout=600)
        node_b = worker("long-b", env)  # idle standby: A holds the task
        await poll(lambda: training(1), "the long run's first epoch", timeout=900)
        epoch_seconds = marks["epoch1"] - marks["epoch0"]
        kill_at = marks["epoch1"] + KILL_AT * epoch_seconds
        await poll(lambda: _after(kill_at), "80% of the second epoch", timeout=900)
        node_a.kill()
        killed = time.monotonic()
        result = await handle.result()
        log = store.get_bytes(settings.runs_bucket, f"runs/{handle.id}/logs/attempt-2.log")
        match = _RESUMED.search(log)
        epoch, samples = (int(match.group(1)), int(match.group(2) or 0)) if match else (0, 0)
        if epoch >= 1:  # the second epoch's start, plus what the checkpoint holds of it
            reached = marks["epoch1"] + samples / max(1, train_samples) * epoch_seconds
        else:
            reached = marks["epoch0"] + samples / max(1, train_samples) * epoch_seconds
        figures = {
            "long_epoch_seconds": epoch_seconds,
            "long_train_images": float(train_samples),
            "resumed_epoch": float(epoch),
            "resumed_samples": float(samples),
            "seconds_rerun_after_kill": killed - reached,
            "seconds_rerun_after_kill_epoch_checkpoints": killed - marks["epoch1"],
            "attempt": float(result.attempt),
            **checkpoint_costs(node_a.log_path.read_text(errors="replace")),
        }
        print(
            f"long run {handle.id}: epoch {epoch_seconds:.1f}s ({train_samples} images), "
            f"killed at {KILL_AT:.0%} of epoch 2, resumed from epoch {epoch} + {samples} "
            f"samples, {result.epochs_done}/2 epochs on attempt {result.attempt}"
        )
        return figures
    finally:
        node_a.kill()
        node_a.stop()
        if node_b is not None:
            node_b.stop()


async def _after(deadline: float) -> bool:
    return time.monotonic() >= deadline
