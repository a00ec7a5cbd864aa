"""Turning Ultralytics outputs into :class:`~activities.contracts.training.TrainResult` parts.

``results.csv`` of a resumed attempt starts where the checkpoint ended: before resuming, the
rows stored in the checkpoint (``train_results``) are written back so that the uploaded
``results.csv`` always covers every epoch of the run.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from activities.contracts.training import HISTORY_CAP, EpochSummary, TrainMetrics

_MAP50 = "metrics/mAP50(B)"
_MAP = "metrics/mAP50-95(B)"
_P = "metrics/precision(B)"
_R = "metrics/recall(B)"


def write_prior_results(csv_path: Path, train_results: dict[str, list[Any]] | None) -> int:
    """Write the checkpoint's ``train_results`` columns as ``results.csv``; returns rows."""
    if not train_results:
        return 0
    columns = list(train_results)
    rows = list(zip(*(train_results[c] for c in columns), strict=False))
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        writer.writerows(rows)
    return len(rows)


def read_rows(csv_path: Path) -> list[dict[str, str]]:
    if not csv_path.exists():
        return []
    with csv_path.open(newline="") as handle:
        return [{k.strip(): v for k, v in row.items() if k} for row in csv.DictReader(handle)]


def _num(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def history(rows: list[dict[str, str]], cap: int = HISTORY_CAP) -> list[EpochSummary]:
    """Per-epoch summary, thinned evenly to at most ``cap`` rows (the last one always kept)."""
    summaries = [
        EpochSummary(
            epoch=int(_num(row.get("epoch")) or index + 1),
            map50=_num(row.get(_MAP50)) or 0.0,
            map50_95=_num(row.get(_MAP)) or 0.0,
            box_loss=_num(row.get("train/box_loss")),
            cls_loss=_num(row.get("train/cls_loss")),
        )
        for index, row in enumerate(rows)
    ]
    if len(summaries) <= cap:
        return summaries
    step = (len(summaries) - 1) / (cap - 1)
    return [summaries[round(i * step)] for i in range(cap)]


def final_metrics(validated: dict[str, float], rows: list[dict[str, str]]) -> TrainMetrics:
    """Metrics of the final validation of best.pt (else the last epoch) + the last losses."""
    last = rows[-1] if rows else {}
    source: dict[str, Any] = validated or last
    losses = {
        key: value
        for key, raw in last.items()
        if key.startswith(("train/", "val/")) and (value := _num(raw)) is not None
    }
    return TrainMetrics(
        map50=_num(source.get(_MAP50)) or 0.0,
        map50_95=_num(source.get(_MAP)) or 0.0,
        precision=_num(source.get(_P)) or 0.0,
        recall=_num(source.get(_R)) or 0.0,
        losses=losses,
    )
