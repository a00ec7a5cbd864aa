"""The overhead benchmark's records and its report: per-job tables, the fit, the last lines.

Kept apart from the measuring (:mod:`bench.overhead`) so each reads on its own.
"""

from __future__ import annotations

import os
import platform
import statistics
from dataclasses import dataclass, field
from typing import Any

from bench._stack import cpu_model


@dataclass(frozen=True)
class Job:
    """One job size."""

    name: str
    images: int
    epochs: int
    batch: int
    imgsz: int
    seed: int


@dataclass
class Pair:
    """One bare run and one pipeline run of a job."""

    bare: dict[str, float] = field(default_factory=dict)
    pipeline: dict[str, float] = field(default_factory=dict)
    pipeline_costs: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per stage (activity): its wall time and named costs (:mod:`bench._overhead_breakdown`)."""

    @property
    def ratio(self) -> float:
        return self.pipeline["total"] / self.bare["total"]

    @property
    def extra(self) -> float:
        return self.pipeline["total"] - self.bare["total"]


def training_seconds(pair: Pair) -> float | None:
    """The pipeline's training stage: the ``train`` activity's wall time from its timing
    record, else the stage time the progress query saw (``--poll``), else None."""
    train = pair.pipeline_costs.get("train", {})
    if "wall" in train:
        return train["wall"]
    return pair.pipeline.get("training")


def accounted_ratio(pair: Pair) -> float | None:
    """The pipeline with its Ultralytics time (``fit`` minus our hooks) replaced by bare's
    train time, over bare: what our own code adds, measured span by span, without the
    run-to-run drift of the training itself (the same training varies by a few percent here,
    more than the overhead being measured)."""
    ultralytics = pair.pipeline_costs.get("train", {}).get("ultralytics")
    if ultralytics is None:
        return None
    return (pair.pipeline["total"] - ultralytics + pair.bare["train"]) / pair.bare["total"]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(job: Job, pairs: list[Pair]) -> None:
    print(f"\n[{job.name}] {job.images} images, {job.epochs} epochs, batch {job.batch}, "
          f"imgsz {job.imgsz}: {len(pairs)} pair(s)")  # fmt: skip
    print("| rep | bare train | bare val | bare export | bare total | pipeline stages "
          "| pipeline total | ratio | extra |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for i, p in enumerate(pairs, 1):
        seen = {k: v for k, v in p.pipeline.items() if k not in {"total", "map50_95"}}
        walls = {stage: costs["wall"] for stage, costs in p.pipeline_costs.items()}
        stages = ", ".join(f"{k} {v:.1f}" for k, v in (seen or walls).items())
        print(
            f"| {i} | {p.bare['train']:.1f} | {p.bare['evaluate']:.1f} | {p.bare['export']:.1f} "
            f"| {p.bare['total']:.1f} | {stages} | {p.pipeline['total']:.1f} | {p.ratio:.3f} "
            f"| {p.extra:+.1f} |"
        )
    print(
        f"median: bare {median([p.bare['total'] for p in pairs]):.1f}s, pipeline "
        f"{median([p.pipeline['total'] for p in pairs]):.1f}s, ratio "
        f"{median([p.ratio for p in pairs]):.3f}, extra {median([p.extra for p in pairs]):.1f}s"
        f" | mAP50-95 bare {[round(p.bare['map50_95'], 3) for p in pairs]} pipeline "
        f"{[round(p.pipeline['map50_95'], 3) for p in pairs]}",
        flush=True,
    )
    accounted = [r for r in map(accounted_ratio, pairs) if r is not None]
    if accounted:
        print(
            "accounted ratio (pipeline with bare's train time in place of its Ultralytics "
            f"time): pairs {[round(r, 3) for r in accounted]}, median {median(accounted):.3f}",
            flush=True,
        )
    train_extra: list[float] = []
    for pair in pairs:
        trained = training_seconds(pair)
        if trained is None:
            return  # neither the timing records nor the progress query saw the training stage
        train_extra.append(trained - pair.bare["train"])
    rest_extra = [p.extra - extra for p, extra in zip(pairs, train_extra, strict=True)]
    print(
        f"median extra split: training stage - bare train {median(train_extra):+.1f}s "
        f"({median(train_extra) / job.epochs:+.2f}s per epoch), other stages - (bare val + "
        f"export) {median(rest_extra):+.1f}s",
        flush=True,
    )


def fit(tiny: list[Pair], medium: list[Pair]) -> tuple[float, float]:
    """Two-point fit pipeline = a + k * bare through the medians: (a seconds, k)."""
    bt, bm = median([p.bare["total"] for p in tiny]), median([p.bare["total"] for p in medium])
    pt = median([p.pipeline["total"] for p in tiny])
    pm = median([p.pipeline["total"] for p in medium])
    k = (pm - pt) / (bm - bt) if bm != bt else float("nan")
    return pt - k * bt, k


def print_results(results: dict[str, Any], bootstrap: int) -> None:
    """The machine, a table per job, the fit, and the machine-readable lines (last)."""
    print(
        f"\nmachine: nproc={os.cpu_count()} cpu={cpu_model()!r} "
        f"python={platform.python_version()} | bootstrap resamples {bootstrap}"
    )
    for name in ("tiny", "medium"):
        table(*results[name])
    from bench._overhead_breakdown import print_breakdown

    print_breakdown(*results["tiny"])  # the table only: the lines are the medium job's
    lines = print_breakdown(*results["medium"])
    tiny, medium = results["tiny"][1], results["medium"][1]
    intercept, slope = fit(tiny, medium)
    print(f"\n2-point fit through the medians: pipeline = {intercept:.1f}s + {slope:.3f} x bare")
    print()
    for line in lines:
        print(line)
    print(f"overhead_ratio_tiny={median([p.ratio for p in tiny]):.3f}")
    print(f"overhead_ratio_medium={median([p.ratio for p in medium]):.3f}")
    accounted = [r for r in map(accounted_ratio, medium) if r is not None]
    if accounted:
        print(f"overhead_ratio_medium_accounted={median(accounted):.3f}")
    print(f"fixed_overhead_seconds={median([p.extra for p in tiny]):.1f}")
    if "stop_early" in results:
        print(f"stop_early_latency_seconds={results['stop_early']:.2f}")
