"""The demo's labelling loop, between two versions.

New images arrive unverified; the production version pre-annotates them (PredictWorkflow:
COCO, YOLO and Label Studio outputs, ranked for the people who verify); people correct and
verify them, the synthetic truth standing in for them (true labels uploaded, images listed in
``verified.jsonl``); then the controller finds enough new verified images to retrain.
:func:`agreement` measures how much of the labellers' work the pre-annotations already did.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from activities.contracts.predict import ImageSource, PredictOptions, PredictRequest
from activities.infra.storage import ObjectStore
from activities.predict.ranking import iou
from workers.dev import synthetic
from workflows.client.api import SentinelClient

INCOMING = "datasets/demo-shapes-incoming"
"""Where new, unverified images land (outside the training prefix until verified)."""


@dataclass(frozen=True)
class Agreement:
    """Pre-annotations against the truth people would have labelled."""

    images: int
    true_boxes: int
    predicted: int
    matched: int

    @property
    def text(self) -> str:
        return (
            f"{self.matched} of {self.true_boxes} true boxes pre-annotated correctly (same class, "
            f"IoU >= 0.5); {self.predicted - self.matched} of {self.predicted} predictions "
            f"needed correcting"
        )


def upload_incoming(
    store: ObjectStore, bucket: str, *, count: int, start: int
) -> list[synthetic.SyntheticImage]:
    """``count`` new images (no labels, not verified) under :data:`INCOMING`."""
    images = synthetic.generate(count, seed=0, start=start)
    for image in images:
        key = f"{INCOMING}/{image.stem}.png"
        store.put_bytes(bucket, key, image.png, content_type="image/png")
    return images


def predict_request(model: str, out: str) -> PredictRequest:
    """Production over the incoming images: every format, small shards to show the sharding."""
    return PredictRequest(
        model=model,
        alias="production",
        source=ImageSource(prefix=INCOMING),
        out=out,
        options=PredictOptions(conf=0.25, batch=8),
        shard_size=8,
    )


def agreement(
    store: ObjectStore, bucket: str, out: str, images: list[synthetic.SyntheticImage]
) -> Agreement:
    """Match the run's COCO results to the synthetic truth, greedily by confidence."""
    results = json.loads(store.get_bytes(bucket, f"{out}/coco/results.json"))
    ids = json.loads(store.get_bytes(bucket, f"{out}/coco/images.json"))["images"]
    stem_of = {image["id"]: image["file_name"].rsplit(".", 1)[0] for image in ids}
    truth = {image.stem: list(image.boxes) for image in images}
    matched = 0
    for result in sorted(results, key=lambda r: -r["score"]):
        x, y, w, h = result["bbox"]
        boxes = truth.get(stem_of[result["image_id"]], [])
        for box in boxes:
            overlap = iou((x, y, x + w, y + h), (box.x0, box.y0, box.x1, box.y1))
            if box.cls == result["category_id"] - 1 and overlap >= 0.5:
                boxes.remove(box)
                matched += 1
                break
    true_boxes = sum(len(image.boxes) for image in images)
    return Agreement(len(images), true_boxes, len(results), matched)


def verify(store: ObjectStore, bucket: str, prefix: str, *, count: int, start: int) -> None:
    """People verify the images: true labels uploaded, images listed in ``verified.jsonl``."""
    synthetic.upload(
        store, bucket, prefix, layout="yolo", count=count, seed=0, start=start, verified=True
    )


async def wait_for_new_run(
    sentinel: SentinelClient, model: str, old_run_id: str, timeout: float = 120.0
) -> str:
    """The run id of the retrain the controller started (after ``old_run_id``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        run_id = (await sentinel.handle(model).describe()).run_id
        if run_id != old_run_id:
            return run_id
        await asyncio.sleep(0.5)
    raise TimeoutError(f"the controller started no retrain of {model} within {timeout:.0f}s")
