"""Predicting one shard: batches of images, each stored as soon as it is predicted.

A shard's output is content-addressed (``{out}/shards/{digest}.json``, the digest covering
its images, the model digests and the options): a finished shard is never predicted again,
and a retried attempt writes the same objects, never new ones. Inside a shard each batch is
stored as a part (with its YOLO label files) right after its inference; an attempt that
follows a killed one predicts only the batches without a part, so a SIGKILL costs at most
the batches in flight. Downloads of the next batch and uploads of the last one overlap the
inference of the current one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from activities.contracts.predict import ShardRequest, ShardResult, StoredObject
from activities.infra.errors import IntegrityError, NotFoundError
from activities.infra.heartbeat import Progress, no_progress
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.predict import layout
from activities.predict.formats import yolo_text
from activities.predict.infer import RUNNERS, Runner, decode
from activities.predict.models import local_weights
from activities.predict.records import (
    ImagePredictions,
    PlanImage,
    ShardOutput,
    ShardPart,
    StoredPlan,
    Task,
    dump,
)

log = logging.getLogger(__name__)
DOWNLOAD_THREADS = 8
UPLOAD_THREADS = 4
Fetched = tuple[PlanImage, np.ndarray | None, str | None]
M = TypeVar("M", bound=BaseModel)


def read_record(
    store: ObjectStore, bucket: str, key: str, model: type[M], sha256: str | None = None
) -> M:
    """``key`` parsed as ``model``, its sha256 verified (recorded, and ``sha256`` if given)."""
    data = store.get_bytes(bucket, key, expected_sha256=sha256)
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        raise IntegrityError(
            f"{bucket}/{key} is not a valid {model.__name__} ({exc.error_count()} errors)"
        ) from None


def stored_parts(store: ObjectStore, bucket: str, out: str, digest: str) -> dict[int, ShardPart]:
    """The batches an earlier attempt stored (a damaged part is predicted again)."""
    parts: dict[int, ShardPart] = {}
    for info in store.list(bucket, layout.parts_prefix(out, digest)):
        batch = layout.parse_part_key(info.key)
        if batch is None:
            continue
        try:
            parts[batch] = read_record(store, bucket, info.key, ShardPart)
        except (IntegrityError, NotFoundError) as exc:
            log.warning("predicting batch %d again: %s", batch, exc)
    return parts


def _fetch(store: ObjectStore, bucket: str, image: PlanImage) -> Fetched:
    try:
        data = store.get_bytes(bucket, image.key)
    except NotFoundError:
        return image, None, "missing: the image was deleted after the run was planned"
    except IntegrityError as exc:  # one corrupted image is reported, not fatal to the run
        return image, None, f"corrupted: {exc}"
    array = decode(data)
    if array is None:
        return image, None, "unreadable: not a decodable image"
    return image, array, None


@dataclass
class _Models:
    """The loaded runner of the version (and of the compared one), loaded on first use."""

    request: ShardRequest
    store: ObjectStore
    settings: Settings
    held: ExitStack
    runners: list[Runner] = field(default_factory=list)

    def predict(self, fetched: list[Fetched]) -> tuple[Task, list[ImagePredictions]]:
        """Predict the readable images with every model; unreadable ones keep their error."""
        if not self.runners:
            request = self.request
            device = request.options.device or (
                "cpu" if request.model.artifact == "model.onnx" else None
            )
            for model in filter(None, (request.model, request.compare)):
                path = local_weights(self.store, self.settings, model)
                runner = RUNNERS.runner(path, request.imgsz, request.options, device)
                self.runners.append(self.held.enter_context(runner))
        runners = self.runners
        arrays = [array for _, array, _ in fetched if array is not None]
        outputs = [runner.predict(arrays) for runner in runners]
        records, position = [], 0
        for image, array, error in fetched:
            if array is None:
                records.append(ImagePredictions(key=image.key, rel=image.rel, error=error))
                continue
            height, width = array.shape[:2]
            records.append(
                ImagePredictions(
                    key=image.key,
                    rel=image.rel,
                    width=int(width),
                    height=int(height),
                    predictions=outputs[0][position],
                    compare=outputs[1][position] if len(outputs) > 1 else None,
                )
            )
            position += 1
        return runners[0].task, records


def _write_batch(
    store: ObjectStore, request: ShardRequest, part: ShardPart, names: list[str]
) -> None:
    """The batch's YOLO label files, then its part (which marks the batch as done)."""
    bucket, out = request.out_bucket, request.out
    if "yolo" in request.formats:
        for image in part.images:
            if image.error is None:
                text = yolo_text(image, part.task, names).encode()
                key = layout.yolo_label_key(out, image.rel)
                store.put_bytes(bucket, key, text, content_type="text/plain")
    key = layout.part_key(out, request.shard.digest, part.batch)
    store.put_bytes(bucket, key, dump(part), content_type="application/json")


def _predict_batches(
    store: ObjectStore,
    plan: StoredPlan,
    batches: list[list[PlanImage]],
    todo: list[int],
    predict: Callable[[list[Fetched]], tuple[Task, list[ImagePredictions]]],
    write: Callable[[ShardPart], None],
    on_batch: Callable[[int, int], None],
) -> dict[int, ShardPart]:
    """Predict the ``todo`` batches, prefetching the next and storing each in the background."""
    new: dict[int, ShardPart] = {}
    downloads = ThreadPoolExecutor(DOWNLOAD_THREADS, thread_name_prefix="predict-get")
    uploads = ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="predict-put")
    pending: dict[int, list[Future[Fetched]]] = {}
    writes: list[Future[None]] = []

    def prefetch(position: int) -> None:
        if position < len(todo):
            batch = batches[todo[position]]
            pending[todo[position]] = [
                downloads.submit(_fetch, store, plan.bucket, image) for image in batch
            ]

    try:
        prefetch(0)
        for position, batch in enumerate(todo):
            prefetch(position + 1)
            fetched = [future.result() for future in pending.pop(batch)]
            task, records = predict(fetched)
            new[batch] = ShardPart(batch=batch, task=task, images=records)
            writes.append(uploads.submit(write, new[batch]))
            on_batch(batch, len(records))
        for future in writes:
            future.result()
    finally:
        downloads.shutdown(wait=True, cancel_futures=True)
        uploads.shutdown(wait=True, cancel_futures=True)
    return new


def predict_shard(
    store: ObjectStore,
    settings: Settings,
    request: ShardRequest,
    *,
    progress: Progress = no_progress,
    attempt: int = 1,
) -> ShardResult:
    """Predict the shard (or find it finished), store its output, return what was done."""
    started = time.monotonic()
    shard, bucket, out = request.shard, request.out_bucket, request.out
    key = layout.shard_key(out, shard.digest)
    found = store.stat(bucket, key)
    if found is not None and found.sha256 is not None:  # finished by an earlier attempt
        output = read_record(store, bucket, key, ShardOutput, found.sha256)
        return _result(request, key, found.sha256, output, 0, shard.images, started)
    ref = request.plan
    plan = read_record(store, ref.bucket, ref.key, StoredPlan, ref.sha256)
    images = plan.images[shard.start : shard.start + shard.images]
    if len(images) != shard.images:
        raise IntegrityError(f"plan {request.plan.key} has no images {shard.start}+{shard.images}")
    size = request.options.batch
    batches = [images[i : i + size] for i in range(0, len(images), size)]
    parts = stored_parts(store, bucket, out, shard.digest)
    todo = [n for n in range(len(batches)) if n not in parts]
    done = sum(len(part.images) for part in parts.values())
    resumed = done
    progress("predict", done, shard.images)
    names = list(request.model.class_names)

    def on_batch(batch: int, count: int) -> None:
        nonlocal done
        done += count
        log.info(
            "predicted shard %d (%s) batch %d: %d images (attempt %d)",
            shard.index, shard.digest[:12], batch, count, attempt,
        )  # fmt: skip
        progress("predict", done, shard.images)

    with ExitStack() as held:  # the runners go back to the pool when the shard is done
        models = _Models(request, store, settings, held)
        parts |= _predict_batches(
            store, plan, batches, todo, models.predict,
            lambda part: _write_batch(store, request, part, names), on_batch,
        )  # fmt: skip
    return _store_output(store, request, key, parts, resumed, started)


def _store_output(
    store: ObjectStore,
    request: ShardRequest,
    key: str,
    parts: dict[int, ShardPart],
    resumed: int,
    started: float,
) -> ShardResult:
    """Merge the parts into the shard's output, store it, then drop the parts."""
    ordered = [parts[n] for n in sorted(parts)]
    output = ShardOutput(
        index=request.shard.index,
        digest=request.shard.digest,
        task=ordered[0].task,
        class_names=list(request.model.class_names),
        model=request.model.label,
        model_sha256=request.model.weights.sha256,
        compare=request.compare.label if request.compare else None,
        images=[image for part in ordered for image in part.images],
    )
    info = store.put_bytes(request.out_bucket, key, dump(output), content_type="application/json")
    store.delete_prefix(request.out_bucket, layout.parts_prefix(request.out, request.shard.digest))
    predicted = len(output.images) - resumed
    assert info.sha256 is not None  # put_bytes records it
    return _result(request, key, info.sha256, output, predicted, resumed, started)


def _result(
    request: ShardRequest,
    key: str,
    sha256: str,
    output: ShardOutput,
    predicted: int,
    resumed: int,
    started: float,
) -> ShardResult:
    return ShardResult(
        index=request.shard.index,
        output=StoredObject(bucket=request.out_bucket, key=key, sha256=sha256),
        images=len(output.images),
        unreadable=sum(1 for image in output.images if image.error is not None),
        predictions=sum(len(image.predictions) for image in output.images),
        predicted=predicted,
        resumed=resumed,
        seconds=time.monotonic() - started,
    )
