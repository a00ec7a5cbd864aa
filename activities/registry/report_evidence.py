"""The evidence sections of ``report.md``: per-class numbers, plots, per-image comparison.

Pictures are linked relatively (``evidence/…``), so the report opens as markdown with its
pictures beside it, in the registry and in the folder ``sentinel models report`` writes.
Only files stored with the version (``artifacts``) are linked.
"""

from __future__ import annotations

from activities.contracts.evidence import ImageComparison, ImageDifference
from activities.contracts.gate import GateDecision
from activities.contracts.registry import ArtifactRecord, PublishRequest
from activities.registry.evidence import TRAINING_CURVES, artifact_name

_PLOTS = (
    ("confusion_matrix_normalized.png", "Normalised confusion matrix (candidate, test split)"),
    ("PR_curve.png", "Precision-recall curve (candidate, test split)"),
    ("F1_curve.png", "F1-confidence curve (candidate, test split)"),
    (TRAINING_CURVES, "Training curves (losses and validation metrics per epoch)"),
)


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.4f}"


def per_class_section(request: PublishRequest, gate: GateDecision) -> list[str]:
    """Each class: instances, both APs, the difference, its interval, the rule's verdict."""
    ev = request.evaluation
    if ev.champion is None:
        return []
    policy = gate.policy
    lost = {loss.name for loss in gate.class_losses}
    # The per-class scores are the task's primary metric's (accuracy for classify).
    score = {"segment": "mask AP50-95", "pose": "pose AP50-95", "classify": "top-1 accuracy"}
    lines = [
        f"## Per class ({score.get(ev.candidate.task, 'AP50-95')}, candidate vs champion)",
        "",
        (
            f"Per-class rule: refuse when a class with at least {policy.min_class_instances} "
            f"test instances loses more than {policy.per_class_tolerance:.4f} and its bootstrap "
            "interval lies below 0."
            if policy.per_class_tolerance is not None
            else "Per-class rule: off (gate policy per_class_tolerance is None)."
        ),
        "",
        "| class | test instances | candidate | champion | difference | interval | rule |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ev.class_names:
        instances = ev.instances_per_class.get(name, 0)
        cand = ev.candidate.per_class_ap50_95.get(name)
        champ = ev.champion.per_class_ap50_95.get(name)
        ci = ev.per_class_ci.get(name)
        interval = f"[{ci.low:+.4f}, {ci.high:+.4f}]" if ci else "-"
        if name in lost:
            verdict = "**LOST: refused**"
        elif policy.per_class_tolerance is None or instances < policy.min_class_instances:
            verdict = "not judged"
        else:
            verdict = "ok"
        difference = cand - champ if cand is not None and champ is not None else None
        lines.append(
            f"| `{name}` | {instances} | {_num(cand)} | {_num(champ)} | {_signed(difference)} "
            f"| {interval} | {verdict} |"
        )
    return [*lines, ""]


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def plots_section(artifacts: dict[str, ArtifactRecord]) -> list[str]:
    """The candidate's plots and the training curves, as images."""
    shown = [(artifact_name(f), title) for f, title in _PLOTS if artifact_name(f) in artifacts]
    if not shown:
        return []
    lines = ["## Plots", ""]
    for path, title in shown:
        lines += [f"### {title}", "", f"![{title}]({path})", ""]
    return lines


def _table(entries: list[ImageDifference], artifacts: dict[str, ArtifactRecord]) -> list[str]:
    lines = [
        "| rank | image | candidate | champion | difference | picture |",
        "|---|---|---|---|---|---|",
    ]
    for rank, entry in enumerate(entries, start=1):
        cand, champ = entry.candidate, entry.champion
        path = artifact_name(entry.picture) if entry.picture else None
        link = f"[{entry.picture}]({path})" if path and path in artifacts else "-"
        lines.append(
            f"| {rank} | `{entry.image}` | {cand.score:.3f} ({cand.missed} missed, "
            f"{cand.spurious} spurious) | {champ.score:.3f} ({champ.missed} missed, "
            f"{champ.spurious} spurious) | {entry.difference:+.3f} | {link} |"
        )
    lines.append("")
    for rank, entry in enumerate(entries, start=1):
        path = artifact_name(entry.picture) if entry.picture else None
        if path and path in artifacts:
            lines += [
                f"{rank}. `{entry.image}` (candidate | champion | ground truth)",
                "",
                f"![{entry.image}: candidate | champion | ground truth]({path})",
                "",
            ]
    return lines


def comparison_section(
    comparison: ImageComparison | None, champion: str, artifacts: dict[str, ArtifactRecord]
) -> list[str]:
    """The test images ranked where the candidate does worse, then better, with pictures."""
    if comparison is None:
        return []
    lines = [
        f"## Image by image: candidate vs {champion}",
        "",
        f"{comparison.images} test images: the candidate does worse on {comparison.worse}, "
        f"better on {comparison.better}, the same on {comparison.unchanged}. Score: F1 of the "
        f"detections with confidence >= {comparison.conf:.2f} against the ground truth, "
        "averaged over IoU 0.50:0.95 (1 for an empty image left empty).",
        "",
        "### Where the candidate does worse (largest loss first)",
        "",
    ]
    lines += _table(comparison.worst, artifacts) if comparison.worst else ["None.", ""]
    lines += ["### Where the candidate does better (largest gain first)", ""]
    lines += _table(comparison.best, artifacts) if comparison.best else ["None.", ""]
    return lines
