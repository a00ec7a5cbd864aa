"""Object keys of a prediction run, all under the caller's ``out`` prefix (data bucket)::

    {out}/manifest.json                 written last: models, shards with digests, outputs
    {out}/summary.json                  images, predictions per class, confidence, throughput
    {out}/ranking.csv                   images in the order a labeller should check them
    {out}/coco/results.json             COCO results (detections) + coco/images.json (ids)
    {out}/yolo/{rel}.txt                one YOLO label file per image (with confidences)
    {out}/yolo/classes.txt              class names in id order
    {out}/labelstudio/tasks.json        Label Studio tasks with predictions, ranked
    {out}/shards/plan-{sha256}.json     the image list the shards read
    {out}/shards/{digest}.json          one shard's predictions (content-addressed)
    {out}/shards/parts/{digest}/{batch}.json   batches of a shard still being predicted

``{digest}`` is derived from the shard's inputs (image keys and etags), the model digests and
the options, so a retried or re-run shard writes the same objects instead of new ones.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

MANIFEST = "manifest.json"
SUMMARY = "summary.json"
RANKING = "ranking.csv"
COCO_RESULTS = "coco/results.json"
COCO_IMAGES = "coco/images.json"
YOLO_DIR = "yolo"
YOLO_CLASSES = "yolo/classes.txt"
LABEL_STUDIO_TASKS = "labelstudio/tasks.json"
SHARDS_DIR = "shards"

_OURS = re.compile(
    r"^(manifest\.json|summary\.json|ranking\.csv|coco/(results|images)\.json|yolo/.+|"
    r"labelstudio/tasks\.json|shards/.+)$"
)


def key(out: str, name: str) -> str:
    """``{out}/{name}``."""
    return f"{out}/{name}"


def plan_key(out: str, sha256: str) -> str:
    return f"{out}/{SHARDS_DIR}/plan-{sha256}.json"


def shard_key(out: str, digest: str) -> str:
    return f"{out}/{SHARDS_DIR}/{digest}.json"


def parts_prefix(out: str, digest: str) -> str:
    return f"{out}/{SHARDS_DIR}/parts/{digest}/"


def part_key(out: str, digest: str, batch: int) -> str:
    return f"{parts_prefix(out, digest)}{batch:05d}.json"


def parse_part_key(key: str) -> int | None:
    """The batch number of a part key, or None."""
    name = PurePosixPath(key).name
    return int(name[:-5]) if name.endswith(".json") and name[:-5].isdigit() else None


def yolo_label_key(out: str, rel: str) -> str:
    """``{out}/yolo/{rel}`` with the image suffix replaced by ``.txt``."""
    return f"{out}/{YOLO_DIR}/{PurePosixPath(rel).with_suffix('.txt')}"


def is_ours(out: str, key: str) -> bool:
    """Whether ``key`` (under ``out/``) is a name this layout writes."""
    return key.startswith(f"{out}/") and _OURS.match(key[len(out) + 1 :]) is not None
