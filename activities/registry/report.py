"""The human-readable files of a version: ``report.md`` and (without training's) ``results.csv``.

Both are pure functions of the publish request (and of the files stored), so a retried
publish writes identical bytes. The evidence sections: :mod:`.report_evidence`.
"""

from __future__ import annotations

from activities.contracts.evaluation import ModelMetrics
from activities.contracts.gate import GateDecision
from activities.contracts.registry import ArtifactRecord, PublishRequest
from activities.contracts.tasks import METRIC_LABELS, TASK_METRICS, metric_label
from activities.registry.report_evidence import (
    comparison_section,
    per_class_section,
    plots_section,
)

_ROWS = (
    ("mAP50-95", "map50_95"),
    ("mAP50", "map50"),
    ("precision", "precision"),
    ("recall", "recall"),
)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _task_rows(candidate: ModelMetrics, champion: ModelMetrics | None) -> list[str]:
    """The task's own metrics (every one of ``scores``), before the box rows."""
    rows = []
    for name in TASK_METRICS[candidate.task]:
        cand = candidate.score(name)
        champ = champion.score(name) if champion else None
        delta = f"{cand - champ:+.4f}" if cand is not None and champ is not None else "-"
        label = (
            metric_label(candidate.task, name) if candidate.task == "obb" else METRIC_LABELS[name]
        )
        rows.append(f"| {label} | {_num(cand)} | {_num(champ)} | {delta} |")
    return rows


def _metric_rows(candidate: ModelMetrics, champion: ModelMetrics | None) -> list[str]:
    rows = _task_rows(candidate, champion) if candidate.task != "detect" else []
    if candidate.task == "classify":  # no boxes: only the task's rows and per-class accuracy
        for name, acc in candidate.per_class_ap50_95.items():
            champ = champion.per_class_ap50_95.get(name) if champion else None
            delta = f"{acc - champ:+.4f}" if champ is not None else "-"
            rows.append(f"| top-1 accuracy `{name}` | {_num(acc)} | {_num(champ)} | {delta} |")
        return rows
    for label, attr in _ROWS:
        cand = getattr(candidate, attr)
        champ = getattr(champion, attr) if champion else None
        delta = f"{cand - champ:+.4f}" if champ is not None else "-"
        rows.append(f"| {label} | {_num(cand)} | {_num(champ)} | {delta} |")
    for name, ap in candidate.per_class_ap50_95.items():
        champ = champion.per_class_ap50_95.get(name) if champion else None
        delta = f"{ap - champ:+.4f}" if champ is not None else "-"
        rows.append(f"| AP50-95 `{name}` | {_num(ap)} | {_num(champ)} | {delta} |")
    return rows


def render_report(
    request: PublishRequest,
    version: int,
    gate: GateDecision,
    artifacts: dict[str, ArtifactRecord],
) -> str:
    """``report.md``: decision, candidate vs champion, per class, plots, image by image,
    parity, dataset counts, artifacts (pictures linked relatively: ``evidence/…``)."""
    ev = request.evaluation
    champion = f"champion v{ev.champion_version}" if ev.champion_version else "the champion"
    lines = [
        f"# {request.model} v{version}",
        "",
        f"- created: {request.created_at.isoformat()} by workflow `{request.workflow_id}` "
        f"(run `{request.run_id}`)",
        *_origin_lines(request),
        "",
        f"## Decision: {'PROMOTED' if gate.promote else 'not promoted'}",
        "",
        gate.reason,
        "",
        *_comparison_section(request),
        *per_class_section(request, gate),
        *plots_section(artifacts),
        *comparison_section(ev.evidence.comparison if ev.evidence else None, champion, artifacts),
        *_export_and_dataset_sections(request),
        "## Artifacts",
        "",
        *(
            f"- `{name}` sha256 `{rec.sha256}` ({rec.size} bytes)"
            for name, rec in sorted(artifacts.items())
        ),
        "",
    ]
    return "\n".join(lines)


def _origin_lines(request: PublishRequest) -> list[str]:
    """Where the weights came from: an import (no training section), or training."""
    if request.imported is not None:
        source = request.imported
        return [
            f"- imported: `{source.file_name}` (sha256 `{source.sha256[:16]}…`, task "
            f"{source.task}), registered as it runs today; not trained by Sentinel"
        ]
    resumed = request.resumed_from_epoch
    lines = [
        f"- parent version: {request.parent_version or '-'}; epochs: {request.epochs}"
        + (f" (resumed from epoch {resumed})" if resumed is not None else "")
    ]
    if request.snapshot.task != "detect":  # detect reports read as they always did
        shape = request.snapshot.kpt_shape
        lines.append(
            f"- task: {request.snapshot.task}"
            + (f" (kpt_shape {shape})" if shape is not None else "")
            + f"; gated on {metric_label(request.snapshot.task, request.gate.metric)}"
        )
    if request.base is not None:
        digest = f" (sha256 `{request.base.sha256[:16]}…`)" if request.base.sha256 else ""
        lines.append(f"- base: `{request.base.spec}`{digest}")
    return lines


def _comparison_section(request: PublishRequest) -> list[str]:
    """Candidate vs champion: the metric table, the bootstrap interval, why no comparison."""
    ev = request.evaluation
    champ_label = f"champion v{ev.champion_version}" if ev.champion else "champion"
    lines = [
        f"## Candidate vs {champ_label} (test split: {ev.images} images, "
        f"{ev.instances} instances; imgsz {ev.imgsz}, conf {ev.conf}, iou {ev.iou})",
        "",
        f"| metric | candidate | {champ_label} | difference |",
        "|---|---|---|---|",
        *_metric_rows(ev.candidate, ev.champion),
        "",
    ]
    if ev.ci is not None:
        task = ev.candidate.task
        measured = "mAP50-95" if task == "detect" else metric_label(task, None)
        lines += [
            f"Bootstrap {ev.ci.level:.0%} CI of the {measured} difference: "
            f"[{ev.ci.low:+.4f}, {ev.ci.high:+.4f}] ({ev.ci.resamples} resamples, "
            f"seed {ev.ci.seed}).",
            "",
        ]
    if ev.comparison_note:
        lines += [f"Comparison: {ev.comparison_note}", ""]
    return lines


def _export_and_dataset_sections(request: PublishRequest) -> list[str]:
    snap, export, parity = request.snapshot, request.export, request.export.parity
    return [
        "## ONNX export",
        "",
        f"opset {export.opset}, dynamic {export.dynamic}, imgsz {export.imgsz}: parity "
        f"{'passed' if parity.passed else 'FAILED'} — {parity.reason}",
        "",
        "## Dataset",
        "",
        f"snapshot `{snap.key}` (sha256 `{snap.sha256[:16]}…`), classes: "
        f"{', '.join(snap.class_names)}",
        "",
        "| split | images |",
        "|---|---|",
        *(f"| {split} | {count} |" for split, count in sorted(snap.counts.items())),
        "",
    ]


def evaluation_csv(request: PublishRequest) -> str:
    """A ``results.csv`` of the evaluation when training's own was not handed over."""
    ev = request.evaluation
    rows = ["model,precision,recall,mAP50,mAP50-95"]
    for label, metrics in (("candidate", ev.candidate), ("champion", ev.champion)):
        if metrics is not None:
            rows.append(
                f"{label},{metrics.precision:.6f},{metrics.recall:.6f},{metrics.map50:.6f},"
                f"{metrics.map50_95:.6f}"
            )
    return "\n".join(rows) + "\n"
