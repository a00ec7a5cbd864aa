"""Paired bootstrap over test images of the AP50-95 differences between two models.

For every mAP task the matches are those of the task's primary metric (boxes, masks,
keypoints, rotated boxes: :mod:`.tasks`); for classify a round scores top-1 accuracy (and each
class's accuracy) of the resampled images instead.

Each round draws image indices with replacement (seeded numpy), scores *both* models on that
same resample with Ultralytics' ``ap_per_class`` and keeps the differences: of mAP50-95, and
of each class's AP50-95 (the per-class gate rule). The intervals are percentile intervals of
those differences. A resample that repeats an image repeats all its detections and targets,
exactly as if the image occurred twice in the test set; a class absent from a resample (no
test instance drawn) has no difference in that round.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from activities.contracts.evaluation import DifferenceCI
from activities.evaluation.validate import ImageStats

OnRound = Callable[[int, int], None]


def scores(stats: ImageStats, indices: np.ndarray | None = None) -> tuple[float, dict[int, float]]:
    """``(mAP50-95, {class id: AP50-95})`` of the images at ``indices`` (all when None).

    Ultralytics' definitions; only classes with at least one target in those images appear.
    """
    from ultralytics.utils.metrics import ap_per_class

    if stats.kind == "accuracy":  # classify: top-1 accuracy, and each class's
        from activities.evaluation.tasks import class_accuracy

        idx_all = range(len(stats.correct)) if indices is None else indices
        picked = [stats.correct[i] for i in idx_all]
        overall = float(np.mean(picked)) if picked else 0.0
        return overall, class_accuracy(stats, indices)
    idx = range(len(stats.files)) if indices is None else indices
    target = [stats.target_cls[i] for i in idx]
    target_cls = np.concatenate(target) if target else np.zeros(0)
    if target_cls.size == 0:
        return 0.0, {}
    tp = np.concatenate([stats.tp[i] for i in idx]).reshape(-1, 10)
    conf = np.concatenate([stats.conf[i] for i in idx])
    pred_cls = np.concatenate([stats.pred_cls[i] for i in idx])
    result = ap_per_class(tp, conf, pred_cls, target_cls)
    ap, classes = result[5], result[6]
    per_class = {int(cls): float(ap[row].mean()) for row, cls in enumerate(classes)}
    return (float(ap.mean()) if ap.size else 0.0), per_class


def map50_95(stats: ImageStats, indices: np.ndarray | None = None) -> float:
    """mAP50-95 of the images at ``indices`` (all images when None), Ultralytics' definition."""
    return scores(stats, indices)[0]


@dataclass(frozen=True)
class PairedBootstrap:
    """Intervals of candidate - champion: overall mAP50-95 and per class id AP50-95."""

    overall: DifferenceCI
    per_class: dict[int, DifferenceCI]


def _interval(estimate: float, diffs: np.ndarray, *, level: float, seed: int) -> DifferenceCI:
    """Percentile interval of the rounds' differences (NaN: the round had no such value)."""
    valid = diffs[~np.isnan(diffs)]
    if valid.size == 0:
        return DifferenceCI(
            estimate=estimate, low=estimate, high=estimate, level=level, resamples=0, seed=seed
        )
    alpha = (1.0 - level) / 2
    low, high = np.quantile(valid, [alpha, 1.0 - alpha])
    return DifferenceCI(
        estimate=estimate,
        low=float(low),
        high=float(high),
        level=level,
        resamples=int(valid.size),
        seed=seed,
    )


def paired_bootstrap(
    candidate: ImageStats,
    champion: ImageStats,
    *,
    resamples: int,
    seed: int,
    level: float,
    on_round: OnRound | None = None,
) -> PairedBootstrap:
    """Percentile bootstrap intervals of the candidate's differences to the champion.

    Both statistics must cover the same images; ``champion`` is aligned to ``candidate``.
    ``resamples == 0``: degenerate intervals at the estimates (no resampling).
    """
    champion = champion.aligned_to(candidate.files)
    cand_map, cand_classes = scores(candidate)
    champ_map, champ_classes = scores(champion)
    classes = sorted(set(cand_classes) & set(champ_classes))
    estimates = {c: cand_classes[c] - champ_classes[c] for c in classes}
    n = len(candidate.files)
    rounds = resamples if n else 0
    diffs = np.full(rounds, np.nan)
    class_diffs = np.full((rounds, len(classes)), np.nan)
    rng = np.random.default_rng(seed)
    for r in range(rounds):
        indices = rng.integers(0, n, size=n)
        cand_r, cand_cls_r = scores(candidate, indices)
        champ_r, champ_cls_r = scores(champion, indices)
        diffs[r] = cand_r - champ_r
        for column, cls in enumerate(classes):
            if cls in cand_cls_r and cls in champ_cls_r:
                class_diffs[r, column] = cand_cls_r[cls] - champ_cls_r[cls]
        if on_round is not None and (r + 1) % 50 == 0:
            on_round(r + 1, rounds)
    return PairedBootstrap(
        overall=_interval(cand_map - champ_map, diffs, level=level, seed=seed),
        per_class={
            cls: _interval(estimates[cls], class_diffs[:, column], level=level, seed=seed)
            for column, cls in enumerate(classes)
        },
    )


def difference_ci(
    candidate: ImageStats,
    champion: ImageStats,
    *,
    resamples: int,
    seed: int,
    level: float,
    on_round: OnRound | None = None,
) -> DifferenceCI:
    """Percentile bootstrap CI of ``mAP50-95(candidate) - mAP50-95(champion)``."""
    return paired_bootstrap(
        candidate, champion, resamples=resamples, seed=seed, level=level, on_round=on_round
    ).overall
