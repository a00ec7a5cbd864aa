"""What we send to MLflow, built from our contracts and Ultralytics values: pure functions.

Metric names are Ultralytics' own (``train/box_loss``, ``metrics/mAP50-95B``, ``lr/pg0``),
with the characters MLflow refuses (parentheses) removed, as Ultralytics' MLflow integration
does: the per-epoch metrics logged live and the ones backfilled from ``results.csv`` share
their names, so a chart has one line per metric whatever route a value took.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Mapping
from typing import Any

from activities.contracts.evaluation import EvaluateResult
from activities.contracts.training import Hyperparameters

_INVALID = re.compile(r"[^/\w.\- :]")


def metric_name(key: str) -> str:
    """``metrics/mAP50(B)`` -> ``metrics/mAP50B``; any other refused character -> ``_``."""
    return _INVALID.sub("_", key.replace("(", "").replace(")", "")).strip() or "_"


def numeric(values: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The finite numbers of ``values`` under MLflow-safe names (``prefix`` prepended)."""
    out: dict[str, float] = {}
    for key, value in values.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out[metric_name(f"{prefix}{key}")] = number
    return out


def csv_epochs(text: str) -> dict[int, dict[str, float]]:
    """Ultralytics ``results.csv`` -> ``{epoch: {metric: value}}`` (``time`` left out)."""
    rows: dict[int, dict[str, float]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        clean = {key.strip(): value for key, value in row.items() if key}
        try:
            epoch = int(float(clean.pop("epoch")))
        except (KeyError, TypeError, ValueError):
            continue
        clean.pop("time", None)
        rows[epoch] = numeric(clean)
    return rows


def hyperparameter_params(hp: Hyperparameters) -> dict[str, str]:
    """Every hyperparameter as an MLflow parameter (``extra.*`` for pass-through ones)."""
    params = {
        key: str(value) for key, value in hp.model_dump(exclude={"extra"}, mode="json").items()
    }
    params.update({f"extra.{key}": str(value) for key, value in hp.extra.items()})
    return params


def evaluation_metrics(result: EvaluateResult) -> dict[str, float]:
    """Candidate and champion scores on the test split, the interval, per-class AP."""
    values = {
        "test/mAP50-95": result.candidate.map50_95,
        "test/mAP50": result.candidate.map50,
        "test/precision": result.candidate.precision,
        "test/recall": result.candidate.recall,
        "test/images": float(result.images),
        "test/instances": float(result.instances),
    }
    for name, ap in result.candidate.per_class_ap50_95.items():
        values[metric_name(f"test/AP50-95/{name}")] = ap
    if result.champion is not None:
        values["champion/mAP50-95"] = result.champion.map50_95
        values["champion/mAP50"] = result.champion.map50
    if result.ci is not None:
        values.update(
            {
                "ci/difference": result.ci.estimate,
                "ci/low": result.ci.low,
                "ci/high": result.ci.high,
            }
        )
    return values
