"""Run every benchmark (``make bench``): one table of every figure, then the lines.

The benchmarks: S3 restart, dataset, recovery, predict, slow MLflow, overhead, bounds.

Each benchmark runs as a subprocess (it starts its own servers); its output streams to stderr
as it runs, and its machine-readable ``key=value`` lines are collected. Then this prints one
combined table and, last, every machine-readable line, overhead first::

    overhead_ratio_tiny=<x>
    overhead_ratio_medium=<x>
    overhead_ratio_medium_accounted=<x>
    fixed_overhead_seconds=<s>
    stop_early_latency_seconds=<s>
    speedup_vs_sequential_loopback=<x>
    speedup_vs_sequential_20ms=<x>
    incremental_fraction=<x>
    resume_seconds=<s>
    epochs_rerun_after_kill=<n>
    detect_seconds=<s>
    heartbeat_timeout_seconds=<s>
    cancel_latency_seconds=<s>
    assembly_peak_rss_mb_small=<MB>
    assembly_peak_rss_mb_large=<MB>
    assembly_rss_growth_kb_per_object=<KB>
    assembly_max_progress_gap_seconds=<s>
    cache_bound_seconds=<s>
    gc_seconds=<s>
    s3_objects=<n>
    s3_stop_seconds=<s>
    s3_restart_seconds=<s>
    s3_mirror_megabytes=<mb>
    sigterm_handover_seconds=<s>
    seconds_rerun_after_kill=<s>
    seconds_rerun_after_kill_epoch_checkpoints=<s>
    predict_ratio_vs_bare=<x>
    predict_ratio_vs_bare_pytorch=<x>
    predict_ratio_vs_bare_onnx=<x>
    predict_images_repeated=<n>
    slow_mlflow_overhead_ratio=<x>
    slow_mlflow_cpu_share=<x>
    slow_mlflow_enqueue_share=<x>
    slow_mlflow_delay_seconds=<s>

plus the breakdowns (where the seconds go): ``breakdown_medium_<stage>_seconds`` and
``breakdown_medium_<stage>_<cost>_seconds`` per stage and named cost of the pipeline
(``bench/overhead.py``, :mod:`bench._overhead_breakdown`), and ``incremental_seconds_<cost>``
per cost of the incremental assembly (``bench/dataset.py``).

``--quick``: a smoke run. A script whose ``--help`` lists ``--quick`` gets it; the others get
small sizes instead (dataset: 200 images; recovery: 8 epochs and a short "long" epoch).
``--only NAME`` runs a subset.
Exits non-zero when a benchmark failed (the others still run and are reported).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
LINE = re.compile(r"^([a-z][a-z0-9_]*)=(-?[0-9][0-9.eE+-]*|nan|inf|-inf)$")

# name -> (section of docs/benchmarks.md, arguments of a quick run without --quick support)
BENCHMARKS: dict[str, tuple[str, list[str]]] = {
    "overhead": ("Overhead", []),
    "dataset": ("Dataset assembly", ["--images", "200"]),
    "recovery": (
        "Training recovery",
        [
            "--epochs",
            "8",
            "--long-images",
            "160",
            "--long-image-px",
            "96",
            "--long-imgsz",
            "96",
            "--interval",
            "1",
        ],  # the short "long" epoch (~4 s here) still spans several intervals
    ),
    "s3_restart": ("Embedded stack restart", []),
    "predict": ("Batch prediction", ["--images", "200"]),
    "tracking_overhead": ("Slow MLflow", []),
    "bounds": ("Bounds and retention", []),
}
# Cheapest first: a broken stack shows up early (bounds uploads 110,000 objects: last).
ORDER = ("s3_restart", "dataset", "recovery", "predict", "tracking_overhead", "overhead", "bounds")


def supports_quick(script: Path) -> bool:
    help_text = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, cwd=REPO
    ).stdout
    return "--quick" in help_text


def run(name: str, quick: bool) -> tuple[int, dict[str, str], float]:
    """Run ``bench/<name>.py``; returns (exit code, its key=value lines, seconds)."""
    script = BENCH / f"{name}.py"
    args: list[str] = []
    if quick:
        args = ["--quick"] if supports_quick(script) else BENCHMARKS[name][1]
    print(f"==> {name}: {' '.join([script.name, *args])}", file=sys.stderr, flush=True)
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-u", str(script), *args],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    figures: dict[str, str] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stderr.write(line)
        match = LINE.match(line.strip())
        if match:
            figures[match.group(1)] = match.group(2)
    code = proc.wait()
    return code, figures, time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run of every benchmark")
    parser.add_argument("--only", action="append", choices=ORDER, help="run only these")
    args = parser.parse_args()
    selected = [name for name in ORDER if not args.only or name in args.only]

    results = {name: run(name, args.quick) for name in selected}

    print()
    print("| benchmark | section | figure | value |")
    print("|---|---|---|---|")
    for name in BENCHMARKS:  # overhead first, as in the lines below
        if name not in results:
            continue
        code, figures, seconds = results[name]
        section = BENCHMARKS[name][0]
        if code != 0 or not figures:
            print(f"| {name} | {section} | FAILED (exit {code}) after {seconds:.0f}s | |")
            continue
        for key, value in figures.items():
            print(f"| {name} | {section} | {key} | {value} |")
    print()
    for name in BENCHMARKS:
        if name in results and results[name][0] == 0:
            for key, value in results[name][1].items():
                print(f"{key}={value}")
    failed = [name for name, (code, _, _) in results.items() if code != 0]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
