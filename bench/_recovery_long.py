"""``bench/recovery.py``'s long-epoch case: lost work bounded by time, not by the epoch.

Two epochs of a minute or more each (the dataset is sized for it on this machine). Worker A
trains with ``SENTINEL_CHECKPOINT_INTERVAL_SECONDS=<interval>``; once its heartbeats report
80% of the second epoch's batches it is SIGKILLed and standby B resumes. Measured:

* ``seconds_rerun_after_kill``: training A had done past the checkpoint B resumed from,
  i.e. what is trained twice: kill time minus the time A had reached the resumed position
  (read from A's heartbeats, which carry the batch count: about one second apart);
* ``seconds_rerun_after_kill_epoch_checkpoints``: the same with checkpoints at epoch ends
  only (before mid-epoch checkpoints): kill time minus the second epoch's start;
* the cost of one mid-epoch checkpoint, from worker A's log: the copy on the training
  thread, the serialisation and the upload (both on the uploader's thread), its size.
"""

from __future__ import annotations

import itertools
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
    batches = -(-train_samples // args.batch)  # per epoch
    node_a, node_b = worker("long-a", env), None
    try:
        handle = await start(request)
        series: list[tuple[float, int, int]] = []  # (time, epoch 1-based, batches done in it)

        async def progress(epoch: int, fraction: float) -> bool:
            details = heartbeat_details(await handle.describe()) or {}
            shown = details.get("progress") or {}
            if (
                details.get("attempt") == 1
                and details.get("phase") == "train"
                and ("batches" in shown)
            ):
                point = (time.monotonic(), int(shown["epoch"]), int(shown["batches"]))
                if not series or series[-1][1:] != point[1:]:
                    series.append(point)
            return bool(series) and series[-1][1:] >= (epoch, int(fraction * batches))

        await poll(lambda: progress(1, 0), "the long run's training loop", timeout=900)
        node_b = worker("long-b", env)  # idle standby: A holds the task
        await poll(lambda: progress(2, KILL_AT), "80% of the second epoch", timeout=1800)
        node_a.kill()
        killed = time.monotonic()
        result = await handle.result()
        log = store.get_bytes(settings.runs_bucket, f"runs/{handle.id}/logs/attempt-2.log")
        match = _RESUMED.search(log)
        epoch, samples = (int(match.group(1)), int(match.group(2) or 0)) if match else (0, 0)
        epoch2_start = _reached(series, 2, 0)
        figures = {
            "long_epoch_seconds": epoch2_start - _reached(series, 1, 0),
            "long_train_images": float(train_samples),
            "resumed_epoch": float(epoch),
            "resumed_samples": float(samples),
            "seconds_rerun_after_kill": killed - _reached(series, epoch + 1, samples / args.batch),
            "seconds_rerun_after_kill_epoch_checkpoints": killed - epoch2_start,
            "attempt": float(result.attempt),
            **checkpoint_costs(node_a.log_path.read_text(errors="replace")),
        }
        print(
            f"long run {handle.id}: epoch {figures['long_epoch_seconds']:.1f}s "
            f"({train_samples} images, {batches} batches), killed at batch {series[-1][2]} of "
            f"epoch 2, resumed from epoch {epoch} + {samples} samples, "
            f"{result.epochs_done}/2 epochs on attempt {result.attempt}"
        )
        return figures
    finally:
        node_a.kill()
        node_a.stop()
        if node_b is not None:
            node_b.stop()


def _reached(series: list[tuple[float, int, int]], epoch: int, batch: float) -> float:
    """When A had trained ``batch`` batches of ``epoch`` (1-based): interpolated between the
    heartbeats around it (about one second apart); an epoch's batch 0 is its first heartbeat
    minus one batch's time."""
    points = [(t, b) for t, e, b in series if e == epoch]
    if len(points) < 2:
        return points[0][0] if points else float("nan")
    (t0, b0), (t1, b1) = points[0], points[1]
    for (ta, ba), (tb, bb) in itertools.pairwise(points):
        if ba <= batch <= bb:
            return ta + (batch - ba) / max(1, bb - ba) * (tb - ta)
    return t0 - (b0 - batch) * (t1 - t0) / max(1, b1 - b0)  # before the first heartbeat


async def _after(deadline: float) -> bool:
    return time.monotonic() >= deadline
