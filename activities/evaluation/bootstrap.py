"""Paired bootstrap over test images of the mAP50-95 difference between two models.

Each round draws image indices with replacement (seeded numpy), scores *both* models on that
same resample with Ultralytics' ``ap_per_class`` and keeps the difference; the interval is
the percentile interval of those differences. A resample that repeats an image repeats all
its detections and targets, exactly as if the image occurred twice in the test set.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from activities.contracts.evaluation import DifferenceCI
from activities.evaluation.validate import ImageStats

OnRound = Callable[[int, int], None]


def map50_95(stats: ImageStats, indices: np.ndarray | None = None) -> float:
    """mAP50-95 of the images at ``indices`` (all images when None), Ultralytics' definition."""
    from ultralytics.utils.metrics import ap_per_class

    idx = range(len(stats.files)) if indices is None else indices
    target = [stats.target_cls[i] for i in idx]
    target_cls = np.concatenate(target) if target else np.zeros(0)
    if target_cls.size == 0:
        return 0.0
    tp = np.concatenate([stats.tp[i] for i in idx]).reshape(-1, 10)
    conf = np.concatenate([stats.conf[i] for i in idx])
    pred_cls = np.concatenate([stats.pred_cls[i] for i in idx])
    ap = ap_per_class(tp, conf, pred_cls, target_cls)[5]
    return float(ap.mean()) if ap.size else 0.0


def difference_ci(
    candidate: ImageStats,
    champion: ImageStats,
    *,
    resamples: int,
    seed: int,
    level: float,
    on_round: OnRound | None = None,
) -> DifferenceCI:
    """Percentile bootstrap CI of ``mAP50-95(candidate) - mAP50-95(champion)``.

    Both statistics must cover the same images; ``champion`` is aligned to ``candidate``.
    """
    champion = champion.aligned_to(candidate.files)
    estimate = map50_95(candidate) - map50_95(champion)
    n = len(candidate.files)
    if resamples == 0 or n == 0:
        return DifferenceCI(
            estimate=estimate, low=estimate, high=estimate, level=level, resamples=0, seed=seed
        )
    rng = np.random.default_rng(seed)
    diffs = np.empty(resamples)
    for r in range(resamples):
        indices = rng.integers(0, n, size=n)
        diffs[r] = map50_95(candidate, indices) - map50_95(champion, indices)
        if on_round is not None and (r + 1) % 50 == 0:
            on_round(r + 1, resamples)
    alpha = (1.0 - level) / 2
    low, high = np.quantile(diffs, [alpha, 1.0 - alpha])
    return DifferenceCI(
        estimate=estimate,
        low=float(low),
        high=float(high),
        level=level,
        resamples=resamples,
        seed=seed,
    )
