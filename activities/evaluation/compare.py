"""Candidate vs champion image by image, from the statistics the validation runs recorded.

An image's score for one model: the F1 of its detections with confidence >= ``conf`` against
the ground truth, averaged over the IoU thresholds 0.50:0.95 (the true-positive matrix the
validator computed), so a box that is found but loose scores less than a tight one; an image
without objects and without detections scores 1. ``F1 = 2 TP / (detections + objects)``.

The images are ranked by the difference of the two scores: where the candidate does worse
(largest loss first) and where it does better (largest gain first); ties by file name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from activities.contracts.evidence import ImageComparison, ImageDifference, ImageScore
from activities.evaluation.validate import ImageStats

EPS = 1e-9


def image_score(
    tp: np.ndarray, conf: np.ndarray, target_cls: np.ndarray, threshold: float
) -> ImageScore:
    """One model's :class:`ImageScore` on one image (``tp``: detections x 10 IoU thresholds)."""
    keep = conf >= threshold
    kept = np.asarray(tp, dtype=bool).reshape(-1, 10)[keep]
    detections, objects = int(keep.sum()), len(target_cls)
    if detections + objects == 0:
        return ImageScore(score=1.0, matched=0, missed=0, spurious=0)
    f1 = 2.0 * kept.sum(axis=0) / (detections + objects)
    matched = int(kept[:, 0].sum())
    return ImageScore(
        score=float(np.clip(f1.mean(), 0.0, 1.0)),
        matched=matched,
        missed=objects - matched,
        spurious=detections - matched,
    )


@dataclass(frozen=True)
class Ranked:
    """The comparison and, for the pictures, the index of each ranked image in the stats."""

    comparison: ImageComparison
    worst_indices: list[int]
    best_indices: list[int]


def compare_images(
    candidate: ImageStats, champion: ImageStats, *, conf: float, keep: int
) -> Ranked:
    """Score every test image for both models; keep the ``keep`` most changed each way.

    ``champion`` is aligned to ``candidate``'s image order (same image set required).
    """
    champion = champion.aligned_to(candidate.files)
    rows = []
    for i, name in enumerate(candidate.files):
        cand = image_score(candidate.tp[i], candidate.conf[i], candidate.target_cls[i], conf)
        champ = image_score(champion.tp[i], champion.conf[i], champion.target_cls[i], conf)
        rows.append((cand.score - champ.score, name, i, cand, champ))
    worse = sorted((r for r in rows if r[0] < -EPS), key=lambda r: (r[0], r[1]))
    better = sorted((r for r in rows if r[0] > EPS), key=lambda r: (-r[0], r[1]))

    def entries(
        chosen: list[tuple[float, str, int, ImageScore, ImageScore]],
    ) -> list[ImageDifference]:
        return [
            ImageDifference(image=name, candidate=cand, champion=champ, difference=diff)
            for diff, name, _, cand, champ in chosen
        ]

    comparison = ImageComparison(
        conf=conf,
        images=len(rows),
        worse=len(worse),
        better=len(better),
        unchanged=len(rows) - len(worse) - len(better),
        worst=entries(worse[:keep]),
        best=entries(better[:keep]),
    )
    return Ranked(
        comparison,
        worst_indices=[r[2] for r in worse[:keep]],
        best_indices=[r[2] for r in better[:keep]],
    )
