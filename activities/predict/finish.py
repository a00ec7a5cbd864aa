"""Finishing a prediction run: merged outputs, the ranking, the summary, the manifest.

Reads every predicted shard (verified against the digest its activity returned), ranks the
images (:mod:`.ranking`), writes the requested formats (:mod:`.formats`; the YOLO label files
were written by the shards), ``ranking.csv`` and ``summary.json``, then ``manifest.json``
last: a run's outputs are complete when its manifest exists. Objects of earlier runs under
the same prefix that this run did not write (other shards, other images' labels, formats not
asked for this time) are deleted after the manifest, so the prefix holds one run's outputs.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from activities.contracts.predict import (
    FinishRequest,
    OutputShape,
    PredictResult,
    PredictSummary,
)
from activities.infra.heartbeat import Progress, no_progress
from activities.infra.storage import ObjectStore
from activities.predict import layout
from activities.predict.formats import coco_images, coco_results, label_studio_task
from activities.predict.ranking import Ranked, rank
from activities.predict.records import ImagePredictions, ShardOutput, Task
from activities.predict.shard import read_record

TOP_RANKED = 10


class _Writer:
    """Writes outputs under ``out`` and remembers their shapes and keys."""

    def __init__(self, store: ObjectStore, bucket: str, out: str) -> None:
        self.store, self.bucket, self.out = store, bucket, out
        self.shapes: dict[str, OutputShape] = {}
        self.keys: set[str] = set()

    def json(self, name: str, output: str, value: Any, records: int) -> None:
        data = json.dumps(value, indent=1, ensure_ascii=False).encode() + b"\n"
        self.bytes(name, output, data, records, "application/json")

    def bytes(self, name: str, output: str, data: bytes, records: int, content_type: str) -> None:
        key = layout.key(self.out, name)
        info = self.store.put_bytes(self.bucket, key, data, content_type=content_type)
        self.keys.add(key)
        self.shapes[output] = OutputShape(
            key=key, files=1, records=records, bytes=len(data), sha256=info.sha256
        )


def _ranking_csv(ranked: list[Ranked]) -> bytes:
    text = io.StringIO()
    rows = csv.writer(text, lineterminator="\n")
    rows.writerow(
        ["rank", "key", "score", "uncertainty", "disagreement", "predictions", "mean_confidence",
         "error"]
    )  # fmt: skip
    for r in ranked:
        mean = r.mean_confidence
        rows.writerow([
            r.rank, r.image.key, f"{r.score:.5f}", f"{r.uncertainty:.5f}",
            "" if r.disagreement is None else f"{r.disagreement:.5f}",
            len(r.image.predictions), "" if mean is None else f"{mean:.5f}", r.image.error or "",
        ])  # fmt: skip
    return text.getvalue().encode()


def _write_formats(
    writer: _Writer, request: FinishRequest, ranked: list[Ranked], task: Task
) -> None:
    """COCO, YOLO class list and Label Studio tasks, as requested."""
    plan, formats = request.plan, request.request.formats
    names, images = plan.model.class_names, [r.image for r in ranked]
    in_order = sorted(images, key=lambda image: image.key)
    readable = [image for image in in_order if image.error is None]
    if "coco" in formats:
        results = coco_results(readable, task)
        writer.json(layout.COCO_RESULTS, "coco", results, len(results))
        ids = coco_images(readable, names, _source_bucket(request))
        writer.json(layout.COCO_IMAGES, "coco_images", ids, len(readable))
    if "yolo" in formats:
        classes = "".join(f"{name}\n" for name in names).encode()
        writer.bytes(layout.YOLO_CLASSES, "yolo_classes", classes, len(names), "text/plain")
        labels = {layout.yolo_label_key(request.request.out, i.rel) for i in readable}
        writer.keys |= labels
        # The label files were written by the shards: their bytes are not summed here.
        writer.shapes["yolo"] = OutputShape(
            key=layout.key(request.request.out, layout.YOLO_DIR), files=len(labels),
            records=sum(len(i.predictions) for i in readable), bytes=0,
        )  # fmt: skip
    if "labelstudio" in formats:
        compare = plan.compare.label if plan.compare else None
        tasks = [
            label_studio_task(
                r,
                bucket=_source_bucket(request),
                task=task,
                names=names,
                model_version=plan.model.label,
                compare_version=compare,
                options=request.request.label_studio,
            )
            for r in ranked
            if r.image.error is None
        ]
        writer.json(layout.LABEL_STUDIO_TASKS, "labelstudio", tasks, len(tasks))
    writer.bytes(layout.RANKING, "ranking", _ranking_csv(ranked), len(ranked), "text/csv")


def _source_bucket(request: FinishRequest) -> str:
    source = request.request.source
    if source.snapshot is not None:
        return source.snapshot.bucket
    return source.bucket or request.plan.out_bucket


def _summary(
    images: list[ImagePredictions], names: list[str], task: Task, request: FinishRequest,
    outputs: dict[str, OutputShape],
) -> PredictSummary:  # fmt: skip
    confidences = [p.conf for image in images for p in image.predictions]
    per_class = Counter(names[p.cls] for image in images for p in image.predictions)
    seconds = max(1e-6, (datetime.now(UTC) - request.started_at).total_seconds())
    return PredictSummary(
        images=len(images),
        unreadable=sum(1 for image in images if image.error is not None),
        predictions=len(confidences),
        predictions_per_class={name: per_class.get(name, 0) for name in names},
        mean_confidence=sum(confidences) / len(confidences) if confidences else None,
        seconds=seconds,
        images_per_second=len(images) / seconds,
        task=task,
        outputs=outputs,
    )


def _manifest(request: FinishRequest, summary: PredictSummary, task: Task) -> dict[str, Any]:
    plan = request.plan
    return {
        "schema_version": 1,
        "workflow_id": request.workflow_id,
        "created_at": datetime.now(UTC).isoformat(),
        "request": request.request.model_dump(mode="json"),
        "model": plan.model.model_dump(mode="json"),
        "compare": plan.compare.model_dump(mode="json") if plan.compare else None,
        "imgsz": plan.imgsz,
        "task": task,
        "plan": plan.plan.model_dump(mode="json"),
        "stopped_early": request.stopped,
        "shards_planned": len(plan.shards),
        "shards": [
            shard.model_dump(mode="json") for shard in sorted(request.shards, key=lambda s: s.index)
        ],
        "summary": summary.model_dump(mode="json"),
    }


def _delete_stale(store: ObjectStore, bucket: str, out: str, keep: set[str]) -> int:
    """Delete our layout's objects under ``out`` that this run did not write."""
    stale = [
        info.key
        for info in store.list(bucket, f"{out}/")
        if layout.is_ours(out, info.key) and info.key not in keep
    ]
    for key in stale:
        store.delete(bucket, key)
    return len(stale)


def finish(
    store: ObjectStore, request: FinishRequest, *, progress: Progress = no_progress
) -> PredictResult:
    """Write the run's outputs and manifest; return the summary."""
    plan, out = request.plan, request.request.out
    shards = sorted(request.shards, key=lambda s: s.index)
    outputs: list[ShardOutput] = []
    for n, shard in enumerate(shards, 1):
        ref = shard.output
        outputs.append(read_record(store, ref.bucket, ref.key, ShardOutput, ref.sha256))
        progress("read shards", n, len(shards))
    images = [image for output in outputs for image in output.images]
    task: Task = outputs[0].task if outputs else "detect"
    ranked = rank(images, classify=task == "classify")
    writer = _Writer(store, plan.out_bucket, out)
    _write_formats(writer, request, ranked, task)
    summary = _summary(images, list(plan.model.class_names), task, request, writer.shapes)
    writer.json(layout.SUMMARY, "summary", summary.model_dump(mode="json"), len(images))
    writer.json(layout.MANIFEST, "manifest", _manifest(request, summary, task), len(shards))
    keep = writer.keys | {plan.plan.key} | {shard.output.key for shard in shards}
    _delete_stale(store, plan.out_bucket, out, keep)
    progress("written", 1, 1)
    return PredictResult(
        model=plan.model.model,
        version=plan.model.version,
        compare_version=plan.compare.version if plan.compare else None,
        out_bucket=plan.out_bucket,
        out=out,
        manifest_key=layout.key(out, layout.MANIFEST),
        summary=summary,
        shards=len(plan.shards),
        shards_predicted=len(shards),
        stopped_early=request.stopped,
        top_ranked=[r.image.key for r in ranked[:TOP_RANKED]],
    )
