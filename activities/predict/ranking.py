"""Which images a labeller should check first: where the model doubts, or two versions disagree.

* ``uncertainty`` of an image: the most doubtful prediction's ``1 - |2 conf - 1|`` (1 for a
  prediction at confidence 0.5, 0 for one at 0 or 1); 0 when nothing was predicted.
* ``disagreement`` (only when a second version was run): the share of predictions without a
  counterpart in the other version's (same class, IoU >= 0.5, matched greedily by
  confidence); for classification, 1 when the top classes differ.
* ``score`` = the larger of the two. Images are ranked by score, highest first (ties by key),
  so an image both versions agree on confidently comes last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from activities.predict.records import ImagePredictions, Prediction

MATCH_IOU = 0.5


@dataclass(frozen=True)
class Ranked:
    """One image's place in the ranking and the numbers behind it."""

    rank: int
    image: ImagePredictions
    score: float
    uncertainty: float
    disagreement: float | None

    @property
    def mean_confidence(self) -> float | None:
        preds = self.image.predictions
        return sum(p.conf for p in preds) / len(preds) if preds else None


def uncertainty(predictions: Sequence[Prediction]) -> float:
    """The most doubtful prediction's ``1 - |2 conf - 1|``; 0 without predictions."""
    return max((1.0 - abs(2.0 * p.conf - 1.0) for p in predictions), default=0.0)


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two ``x1, y1, x2, y2`` boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def matched(a: Sequence[Prediction], b: Sequence[Prediction]) -> int:
    """Pairs of same-class predictions with IoU >= 0.5, matched greedily by confidence."""
    taken: set[int] = set()
    pairs = 0
    for p in sorted(a, key=lambda p: -p.conf):
        best, best_iou = None, MATCH_IOU
        for j, q in enumerate(b):
            if j in taken or q.cls != p.cls or p.box is None or q.box is None:
                continue
            overlap = iou(p.box, q.box)
            if overlap >= best_iou:
                best, best_iou = j, overlap
        if best is not None:
            taken.add(best)
            pairs += 1
    return pairs


def disagreement(a: Sequence[Prediction], b: Sequence[Prediction], *, classify: bool) -> float:
    """How much two versions' predictions of one image differ, in [0, 1]."""
    if classify:
        top_a = max(a, key=lambda p: p.conf).cls if a else None
        top_b = max(b, key=lambda p: p.conf).cls if b else None
        return 0.0 if top_a == top_b else 1.0
    if not a and not b:
        return 0.0
    pairs = matched(a, b)
    return 1.0 - pairs / (len(a) + len(b) - pairs)


def rank(images: Sequence[ImagePredictions], *, classify: bool = False) -> list[Ranked]:
    """Every image with its rank (1 = check first); unreadable images rank last."""
    scored = []
    for image in images:
        doubt = uncertainty(image.predictions)
        differ = (
            disagreement(image.predictions, image.compare, classify=classify)
            if image.compare is not None
            else None
        )
        score = max(doubt, differ or 0.0)
        scored.append((image.error is not None, -score, image.key, image, doubt, differ))
    scored.sort(key=lambda item: item[:3])
    return [
        Ranked(rank=n, image=item[3], score=-item[1], uncertainty=item[4], disagreement=item[5])
        for n, item in enumerate(scored, 1)
    ]
