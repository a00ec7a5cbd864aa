"""The human-readable files of a version: ``report.md`` and (without training's) ``results.csv``.

Both are pure functions of the publish request (and of the files stored), so a retried
publish writes identical bytes. The evidence sections: :mod:`.report_evidence`.
"""

from __future__ import annotations

from activities.contracts.evaluation import ModelMetrics
from activities.contracts.gate import GateDecision
from activities.contracts.registry import ArtifactRecord, PublishRequest
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


def _metric_rows(candidate: ModelMetrics, champion: ModelMetrics | None) -> list[str]:
    rows = []
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
        lines += [
            f"Bootstrap {ev.ci.level:.0%} CI of the mAP50-95 difference: "
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
