"""Every task end to end on the real stack, through the ``sentinel`` CLI.

Per task (segment, pose, obb, classify; detect is ``test_retrain.py``): a synthetic dataset of
that task, v1 trained from the task's architecture and published, v2 gated against v1 on the
same test split with the task's own metric and bootstrap interval, both exported with ONNX
parity; then the production version predicts the dataset's images (``sentinel predict``, every
format, PyTorch and ONNX Runtime) exactly as Ultralytics does from the same pulled file. Tiny
on purpose (64 px, one epoch, 20 images): the numbers are not the point, the plumbing is. The
pose run also proves a pose base is refused for a detection dataset before anything is trained,
the segment run that another class list than the champion's is.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from activities.contracts.dataset import MinCounts
from activities.contracts.evaluation import EvaluationOptions
from activities.contracts.export import ExportOptions
from activities.contracts.retrain import RetrainRequest
from activities.contracts.tasks import PRIMARY_METRIC, TASK_METRICS, metric_label
from activities.contracts.training import RegistryBase
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from tests.helpers.cli import sentinel_cli
from tests.helpers.factories import assemble_request, tiny_hyperparameters, unique_model
from tests.helpers.label_studio import validate_tasks
from tests.helpers.outside import alias, metadata, objects, raw
from tests.helpers.stack import Queues, RunWorkers
from workers.dev.synthetic.tasks import upload_task

pytestmark = pytest.mark.timeout(600)


def _request(prefix: str, task: str, queues: Queues, model: str, **updates: object) -> str:
    fields: dict[str, object] = {
        "dataset": assemble_request(
            model, prefix, task=task, min_counts=MinCounts(train=4, val=1, test=1)
        ),
        **updates,
    }
    request = RetrainRequest(
        model_name=model,
        hyperparameters=tiny_hyperparameters(1),
        evaluation=EvaluationOptions(bootstrap_resamples=50),
        export=ExportOptions(map_tolerance=0.05),
        cpu_task_queue=queues.cpu,
        gpu_task_queue=queues.gpu,
        **fields,  # type: ignore[arg-type]
    )
    return request.model_dump_json()


async def _retrain(queues: Queues, tmp_path: Path, body: str) -> tuple[int, str, str]:
    path = tmp_path / f"request-{uuid.uuid4().hex[:6]}.json"
    path.write_text(body)
    code, out, err = await sentinel_cli(queues, "retrain", "start", "--request", str(path))
    assert code == 0, (out, err)
    model = json.loads(body)["model_name"]
    return await sentinel_cli(queues, "retrain", "result", model, timeout=500)


@pytest.mark.parametrize("task", ["segment", "pose", "obb", "classify"])
async def test_task_v1_then_v2_gated_exported_published(
    task: str,
    queues: Queues,
    run_workers: RunWorkers,
    store: ObjectStore,
    settings: Settings,
    tmp_path: Path,
) -> None:
    prefix = f"datasets/{task}-{uuid.uuid4().hex[:6]}"
    upload_task(store, settings.data_bucket, prefix, task=task, count=20, seed=4, size=64)  # type: ignore[arg-type]
    model = unique_model()
    async with run_workers():
        code, out, err = await _retrain(queues, tmp_path, _request(prefix, task, queues, model))
        assert code == 0, (out, err)
        code, out, err = await _retrain(queues, tmp_path, _request(prefix, task, queues, model))
        assert code == 0, (out, err)
        assert f"candidate {metric_label(task, None)}" in out, out
        code, listing, err = await sentinel_cli(queues, "models", "list", model)
        assert code == 0 and metric_label(task, None) in listing, (listing, err)
        await _production_predicts_the_task(queues, store, settings, tmp_path, model, prefix, task)
        if task == "pose":
            await _pose_base_refused_for_detect(queues, store, settings, tmp_path, model)
        if task == "segment":  # another class list than the champion's: refused, both named
            names = ["circle", "square", "triangle", "hexagon"]
            dataset = assemble_request(model, prefix, task=task, class_names=names)
            body = _request(prefix, task, queues, model, dataset=dataset)
            code, out, err = await _retrain(queues, tmp_path, body)
            assert code != 0 and "['circle', 'square', 'triangle']" in err + out, (out, err)
            assert str(names) in err + out and "v2" in err + out
    bucket = settings.models_bucket
    meta1, meta2 = metadata(store, bucket, model, 1), metadata(store, bucket, model, 2)
    primary = PRIMARY_METRIC[task]
    for meta in (meta1, meta2):
        assert meta["snapshot"]["task"] == task and meta["candidate"]["task"] == task
        assert set(meta["candidate"]["scores"]) == set(TASK_METRICS[task])
        assert meta["gate"]["metric"] == primary
        assert meta["parity"]["passed"], meta["parity"]["reason"]
        assert meta["artifacts"]["model.onnx"]["size"] > 0
    if task == "pose":
        assert meta1["snapshot"]["kpt_shape"] == [4, 3]
    # v1: no champion, the floor (0) on the task's metric.
    assert meta1["champion_version"] is None and meta1["gate"]["promote"]
    assert meta1["gate"]["candidate_map50_95"] == meta1["candidate"]["scores"][primary]
    # v2: compared with v1 on the same test images, on the task's metric, with its interval.
    assert meta2["champion_version"] == 1 and meta2["test_images"] == meta1["test_images"]
    cand, champ = meta2["candidate"]["scores"][primary], meta2["champion"]["scores"][primary]
    assert meta2["ci"]["estimate"] == pytest.approx(cand - champ, abs=1e-9)
    assert meta2["ci"]["low"] <= meta2["ci"]["high"] and meta2["ci"]["resamples"] > 0
    assert meta2["candidate"]["per_class_ap50_95"]  # per-class scores of the primary metric
    # Evidence: the candidate's plots (per-image pictures draw boxes: detect's only).
    assert "evidence/confusion_matrix_normalized.png" in meta2["artifacts"]
    assert not [name for name in meta2["artifacts"] if name.startswith("evidence/worse-")]
    report = raw(store, bucket, f"models/{model}/v2/report.md").decode()
    assert f"- task: {task}" in report and f"gated on {metric_label(task, None)}" in report
    expected = 2 if meta2["gate"]["promote"] else 1
    assert meta2["gate"]["promote"] == (cand - champ >= -1e-9)
    assert alias(store, bucket, model) == expected


PREDICT_CONF = 0.0001
"""Very low: a one-epoch model of 64 px predicts nothing at 0.01, and something here."""
LINE_FIELDS = {"pose": 1 + 4 + 4 * 3 + 1, "obb": 1 + 8 + 1}
"""Fields of a YOLO prediction line: class, box, 4 keypoints (x y v) and confidence (pose);
class, 4 corners and confidence (obb). Segment lines hold a polygon (even count, >= 8)."""
ARTIFACT = {"pytorch": "pt", "onnx": "onnx"}
"""The file each prediction backend runs (``models pull --format``)."""


def _bare_predictions(weights: Path, images: dict[str, Path], task: str) -> dict[str, list[Any]]:
    """Ultralytics on the pulled weights, per image key: (class, confidence) pairs, or for
    classify the top classes' (name, confidence)."""
    from ultralytics import YOLO

    model = YOLO(str(weights), task=task)
    found: dict[str, list[Any]] = {}
    for key, path in images.items():
        (result,) = model.predict(str(path), conf=PREDICT_CONF, imgsz=64, verbose=False)
        if task == "classify":
            top = [int(i) for i in result.probs.top5]
            confs = [float(c) for c in result.probs.top5conf]
            found[key] = [(result.names[i], c) for i, c in zip(top, confs, strict=True)]
            continue
        boxes = result.obb if task == "obb" else result.boxes
        pairs = zip(boxes.cls.tolist(), boxes.conf.tolist(), strict=True)
        found[key] = [(int(c), float(p)) for c, p in pairs]
    return found


def _ours(line: str, task: str) -> tuple[Any, float]:
    """(class, confidence) of one of our YOLO lines, its shape checked for the task."""
    fields = line.split()
    if task == "classify":  # "conf name"
        return fields[1], float(fields[0])
    if task == "segment":
        assert len(fields) >= 8 and len(fields) % 2 == 0, line  # class, >= 3 points, conf
    else:
        assert len(fields) == LINE_FIELDS[task], line
    return int(fields[0]), float(fields[-1])


async def _production_predicts_the_task(
    queues: Queues, store: ObjectStore, settings: Settings, tmp_path: Path, model: str,
    prefix: str, task: str,
) -> None:  # fmt: skip
    """``predict start`` with the production version, on each backend (PyTorch on the GPU
    queue, ONNX Runtime on the CPU queue), writes every format in the task's shape, with what
    Ultralytics predicts from the same (pulled, verified) file on the same images."""
    data = settings.data_bucket
    (tmp_path / "images").mkdir()
    images: dict[str, Path] = {}
    for key in objects(store, data, prefix):
        if key.endswith((".png", ".jpg")):
            images[key] = tmp_path / "images" / key.replace("/", "_")
            images[key].write_bytes(raw(store, data, key))
    for backend, artifact in ARTIFACT.items():
        out = f"predictions/{model}-{backend}"
        code, stdout, err = await sentinel_cli(
            queues, "predict", "start", "--model", model, "--alias", "production", "--prefix",
            prefix, "--out", out, "--format", "coco,yolo,labelstudio", "--backend", backend,
            "--conf", str(PREDICT_CONF), "--follow",
        )  # fmt: skip
        assert code == 0, (backend, stdout, err)
        weights = tmp_path / f"{model}.{artifact}"
        code, stdout, err = await sentinel_cli(
            queues, "models", "pull", model, "--alias", "production", "--format", artifact,
            "-o", str(weights),
        )  # fmt: skip
        assert code == 0 and weights.is_file(), (stdout, err)
        _check_outputs(store, data, out, prefix, task, _bare_predictions(weights, images, task))


def _check_outputs(
    store: ObjectStore, data: str, out: str, prefix: str, task: str, bare: dict[str, list[Any]]
) -> None:
    """The run's summary, YOLO files, COCO results and Label Studio tasks against ``bare``."""
    summary = json.loads(raw(store, data, f"{out}/summary.json"))
    assert summary["task"] == task and summary["images"] == len(bare) > 0, summary
    assert summary["predictions"] == sum(map(len, bare.values())) > 0, summary
    for key, expected in bare.items():
        rel = Path(key[len(prefix) + 1 :]).with_suffix(".txt")
        lines = raw(store, data, f"{out}/yolo/{rel}").decode().splitlines()
        ours = [_ours(line, task) for line in lines]
        # Order-free (equal confidences may come in either order): the classes, and the
        # confidences sorted.
        assert Counter(c for c, _ in ours) == Counter(c for c, _ in expected), (out, key)
        mine, theirs = sorted(p for _, p in ours), sorted(p for _, p in expected)
        assert mine == pytest.approx(theirs, abs=1e-3), (out, key)
    coco = json.loads(raw(store, data, f"{out}/coco/results.json"))
    shape = {"segment": "segmentation", "pose": "keypoints", "obb": "rotated_bbox"}.get(task)
    assert len(coco) == summary["predictions"] and all(shape is None or shape in r for r in coco)
    tasks = json.loads(raw(store, data, f"{out}/labelstudio/tasks.json"))
    validate_tasks(tasks)
    kinds = {r["type"] for t in tasks for p in t["predictions"] for r in p["result"]}
    assert EXPECTED_REGIONS[task][0] in kinds <= EXPECTED_REGIONS[task][1], (out, kinds)


EXPECTED_REGIONS = {
    "segment": ("polygonlabels", {"polygonlabels", "rectanglelabels"}),
    "pose": ("rectanglelabels", {"rectanglelabels", "keypointlabels"}),
    "obb": ("rectanglelabels", {"rectanglelabels"}),
    "classify": ("choices", {"choices"}),
}
"""Per task, the Label Studio region type its pre-annotations must hold, and every type they
may hold (a mask too small to trace keeps its box; keypoints under 0.5 visibility are left out)."""


async def _pose_base_refused_for_detect(
    queues: Queues, store: ObjectStore, settings: Settings, tmp_path: Path, pose_model: str
) -> None:
    """A detection dataset with the pose model's v1 as base: refused, nothing trained."""
    prefix = f"datasets/detect-{uuid.uuid4().hex[:6]}"
    upload_task(store, settings.data_bucket, prefix, task="detect", count=12, seed=2, size=64)
    model = unique_model()
    body = _request(
        prefix, "detect", queues, model, base=RegistryBase(model=pose_model, version="1")
    )
    code, out, err = await _retrain(queues, tmp_path, body)
    assert code != 0
    assert "is a pose model" in err + out and "detect dataset" in err + out, (out, err)
    run = f"runs/retrain-{model}/"
    assert not [k for k in objects(store, settings.runs_bucket, run) if "checkpoints" in k]
    assert not objects(store, settings.models_bucket, f"models/{model}/")
