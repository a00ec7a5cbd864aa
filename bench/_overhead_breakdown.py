"""Where the pipeline's seconds go: per stage (activity) and per named cost inside each.

The workers run in the benchmark's process, so each activity's timing record
(:mod:`activities.infra.timings`, opened by the worker's interceptor) is read back by the
run's workflow id. Per job, medians over the pairs: a table; for the medium job also one
machine-readable line per stage and cost::

    breakdown_<job>_<stage>_seconds=<s>          (the activity's wall time)
    breakdown_<job>_<stage>_<cost>_seconds=<s>   (a named cost inside it)
    breakdown_<job>_orchestration_seconds=<s>    (pipeline total - the activities' wall)

Costs named ``bg.*`` ran in a background thread (checkpoint uploads, the run log): they
overlap the activity's wall time but take CPU from it. ``other`` is the activity's wall time
not inside a named cost; in ``train``, ``ultralytics`` is ``fit`` minus our hooks inside it
(heartbeat, checkpoint staging, control poll, progress signal, run log) - what bare training
does too.
"""

from __future__ import annotations

import re
from typing import Any

from activities.infra.timings import Timings
from bench._overhead_results import Job, Pair, median

HOOKS = ("heartbeat", "checkpoint_stage", "control_poll", "progress_signal", "run_log")
"""Costs inside ``train``'s ``fit`` span (on the training thread, between batches/epochs)."""
BARE = {"train": "train", "evaluate": "evaluate", "export": "export"}
"""Pipeline stage -> the bare step it does the same work as."""
ORDER = ("assemble_dataset", "train", "evaluate", "export", "publish", "notify")


def stage_costs(records: list[Timings]) -> dict[str, dict[str, float]]:
    """``{stage: {"wall": s, cost: s, ..., "other": s}}`` summed over a run's attempts."""
    out: dict[str, dict[str, float]] = {}
    for record in records:
        costs = out.setdefault(record.stage, {"wall": 0.0})
        costs["wall"] += record.wall
        for name, seconds in record.seconds.items():
            costs[name] = costs.get(name, 0.0) + seconds
    for stage, costs in out.items():
        named = sum(v for k, v in costs.items() if k != "wall" and not k.startswith("bg."))
        if stage == "train" and "fit" in costs:
            hooks = sum(costs.get(k, 0.0) for k in HOOKS)
            costs["ultralytics"] = costs["fit"] - hooks
            named -= hooks  # inside fit: counted once
        costs["other"] = max(0.0, costs["wall"] - named)
    return out


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _stage_order(stages: set[str]) -> list[str]:
    return [s for s in ORDER if s in stages] + sorted(stages - set(ORDER))


def _cost_order(stage: str, costs: set[str]) -> list[str]:
    first = ["ultralytics", "fit"] if stage == "train" else []
    last = ["other"]
    middle = sorted(
        costs - set(first) - set(last) - {"wall"}, key=lambda k: (k.startswith("bg."), k)
    )
    return [c for c in first if c in costs] + middle + [c for c in last if c in costs]


def print_breakdown(job: Job, pairs: list[Pair]) -> list[str]:
    """The table of one job; returns its machine-readable lines (printed last by the caller)."""
    runs: list[dict[str, dict[str, float]]] = [p.pipeline_costs for p in pairs]
    if not runs or not all(runs):
        return []
    stages = _stage_order({s for run in runs for s in run})
    total = median([p.pipeline["total"] for p in pairs])
    bare_total = median([p.bare["total"] for p in pairs])
    lines: list[str] = []

    def med(stage: str, cost: str) -> float:
        return median([run.get(stage, {}).get(cost, 0.0) for run in runs])

    print(f"\n[{job.name}] where the pipeline's seconds go (median of {len(pairs)} run(s); "
          f"pipeline {total:.1f} s, bare {bare_total:.1f} s)")  # fmt: skip
    print("| stage / cost | pipeline | bare | extra | extra / bare total |")
    print("|---|---|---|---|---|")
    walls = 0.0
    for stage in stages:
        wall = med(stage, "wall")
        walls += wall
        bare_step = BARE.get(stage)
        bare = median([p.bare[bare_step] for p in pairs]) if bare_step else 0.0
        extra = wall - bare
        print(f"| **{stage}** | {wall:.2f} s | {bare:.2f} s | {extra:+.2f} s "
              f"| {extra / bare_total:+.2%} |")  # fmt: skip
        lines.append(f"breakdown_{job.name}_{_slug(stage)}_seconds={wall:.3f}")
        names = {c for run in runs for c in run.get(stage, {})}
        for cost in _cost_order(stage, names):
            seconds = med(stage, cost)
            note = " (background)" if cost.startswith("bg.") else ""
            print(f"| &nbsp;&nbsp;{cost}{note} | {seconds:.3f} s | | | "
                  f"{seconds / bare_total:.2%} |")  # fmt: skip
            lines.append(f"breakdown_{job.name}_{_slug(stage)}_{_slug(cost)}_seconds={seconds:.3f}")
    orchestration = total - walls
    print(f"| **orchestration** (dispatch, workflow tasks, client) | {orchestration:.2f} s | | "
          f"{orchestration:+.2f} s | {orchestration / bare_total:+.2%} |")  # fmt: skip
    print(f"| **total** | {total:.2f} s | {bare_total:.2f} s | {total - bare_total:+.2f} s "
          f"| {(total - bare_total) / bare_total:+.2%} |")  # fmt: skip
    lines.append(f"breakdown_{job.name}_orchestration_seconds={orchestration:.3f}")
    return lines


def attach(pair: Pair, records: list[Any]) -> None:
    """Keep a pipeline run's activity records on its pair (by stage)."""
    pair.pipeline_costs = stage_costs(records)
