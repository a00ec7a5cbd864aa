"""The evidence of one evaluation, stored in the runs bucket for publish to copy.

* the Ultralytics plots of the candidate on the test split (normalised confusion matrix, PR
  and F1 curves), made by its validation run (``run_val(plots_dir=...)``);
* with a champion: the per-image comparison (:mod:`.compare`) and a side-by-side picture
  (:mod:`.pictures`) of each ranked image: candidate | champion | ground truth.

Every file is uploaded under ``prefix`` with its sha256; :class:`Evidence` names the keys and
digests, so publish verifies each one it copies into the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from activities.contracts.evaluation import EvaluationOptions
from activities.contracts.evidence import Evidence, EvidenceFile, ImageDifference, ImageScore
from activities.evaluation.compare import compare_images
from activities.evaluation.pictures import Panel, write_side_by_side
from activities.evaluation.validate import ImageStats, ValRun
from activities.infra.storage import ObjectStore

PLOT_TITLES = {
    "confusion_matrix_normalized.png": "Normalised confusion matrix of the candidate (test split)",
    "PR_curve.png": "Precision-recall curve of the candidate (test split)",
    "F1_curve.png": "F1-confidence curve of the candidate (test split)",
}
"""The plots kept (names as :data:`activities.evaluation.validate.PLOTS` keeps them)."""


@dataclass(frozen=True)
class EvidenceTarget:
    """Where the evidence goes: the runs bucket and a prefix of this attempt's own."""

    bucket: str
    prefix: str


def _score_text(score: ImageScore) -> str:
    return f"score {score.score:.2f} ({score.missed} missed, {score.spurious} spurious)"


def draw_picture(
    out: Path,
    name: str,
    index: int,
    entry: ImageDifference,
    stats: tuple[ImageStats, ImageStats],
    labels: tuple[str, dict[int, str]],
) -> Path:
    """Draw candidate | champion | ground truth of image ``index`` as ``out/name``.

    ``stats``: candidate's and champion's statistics in the same image order (boxes recorded);
    ``labels``: the champion's title and the class names.
    """
    candidate, champion = stats
    champion_label, names = labels
    truth = candidate.truth[index]
    panels = [
        Panel(f"candidate: {_score_text(entry.candidate)}", candidate.boxes[index]),
        Panel(f"{champion_label}: {_score_text(entry.champion)}", champion.boxes[index]),
        Panel(f"ground truth: {len(truth)} objects", truth, truth=True),
    ]
    return write_side_by_side(out / name, Path(candidate.paths[index]), panels, names)


def _upload(store: ObjectStore, target: EvidenceTarget, path: Path, title: str) -> EvidenceFile:
    info = store.put_file(
        target.bucket, f"{target.prefix}{path.name}", path, content_type="image/png"
    )
    return EvidenceFile(
        name=path.name, key=info.key, sha256=info.sha256 or "", size=info.size, title=title
    )


def build_evidence(
    store: ObjectStore,
    target: EvidenceTarget,
    *,
    candidate: ValRun,
    champion: ValRun | None,
    champion_version: int | None,
    plots_dir: Path,
    workdir: Path,
    options: EvaluationOptions,
) -> Evidence:
    """Make, upload and describe the evidence of one evaluation."""
    files = [
        _upload(store, target, plots_dir / name, title)
        for name, title in PLOT_TITLES.items()
        if (plots_dir / name).is_file()
    ]
    if champion is None:
        return Evidence(bucket=target.bucket, prefix=target.prefix, files=files)
    ranked = compare_images(
        candidate.stats, champion.stats, conf=options.evidence_conf, keep=options.evidence_images
    )
    aligned = champion.stats.aligned_to(candidate.stats.files)
    label = f"champion v{champion_version}" if champion_version is not None else "champion"
    pictured: dict[str, list[ImageDifference]] = {}
    for direction, entries, indices in (
        ("worse", ranked.comparison.worst, ranked.worst_indices),
        ("better", ranked.comparison.best, ranked.best_indices),
    ):
        pictured[direction] = []
        for rank, (entry, index) in enumerate(zip(entries, indices, strict=True), start=1):
            name = f"{direction}-{rank:02d}.png"
            path = draw_picture(
                workdir, name, index, entry, (candidate.stats, aligned), (label, candidate.names)
            )
            title = f"{entry.image}: the candidate does {direction} ({entry.difference:+.2f})"
            files.append(_upload(store, target, path, title))
            pictured[direction].append(entry.model_copy(update={"picture": name}))
    comparison = ranked.comparison.model_copy(
        update={"worst": pictured["worse"], "best": pictured["better"]}
    )
    return Evidence(bucket=target.bucket, prefix=target.prefix, files=files, comparison=comparison)
