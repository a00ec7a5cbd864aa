"""Benchmark (not a test): what the evidence and the per-class intervals add to an evaluation.

Trains two tiny models on synthetic shapes (``yolov8n.yaml`` from scratch, imgsz 64: the
champion on every label, the candidate with the triangles' labels removed), then times the
evaluate activity's work on a synthetic test split, in this process, alternating:

After one untimed warm-up, runs alternate (plain, evidence, ...; medians reported):

* ``plain``: both validation runs (per-image statistics recorded) + the paired bootstrap;
* ``evidence``: the same with the candidate's Ultralytics plots, both models' boxes recorded,
  the per-image comparison and the side-by-side pictures drawn (``--pictures`` each way), as
  ``activities.evaluation.activity.evaluate`` does with ``options.evidence`` (uploads to S3
  excluded: a few hundred KB).

and, separately, the bootstrap with the per-class intervals (``paired_bootstrap``) against the
overall interval alone (the loop as it was before the per-class rule), same seed and rounds.

The last lines are machine-readable::

    evaluation_seconds_plain=<s>
    evaluation_seconds_with_evidence=<s>
    evidence_overhead_seconds=<s>
    per_class_bootstrap_ratio=<x>

Run: ``.venv/bin/python bench/evidence.py`` (about 3-5 minutes on 2 CPU cores); ``--quick``
for a smoke run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from activities.contracts.evaluation import EvaluationOptions
from activities.evaluation.validate import ImageStats
from activities.infra.yolo_env import bootstrap_offline
from workers.dev import synthetic

IMGSZ = 64


def train(data_yaml: Path, out: Path, name: str, epochs: int) -> Path:
    """``best.pt`` of a tiny model (reused when ``out`` already holds it: ``--workdir``)."""
    from ultralytics import YOLO

    best = out / name / "weights" / "best.pt"
    if best.is_file():
        return best
    YOLO("yolov8n.yaml").train(
        data=str(data_yaml), epochs=epochs, imgsz=IMGSZ, batch=4, nbs=4, mosaic=0.0,
        warmup_epochs=0.0, device="cpu", workers=0, seed=0, plots=False, verbose=False,
        project=str(out), name=name, exist_ok=True,
    )  # fmt: skip
    return best


def datasets(root: Path, test_images: int) -> tuple[Path, Path]:
    """Data yamls: all labels, and the triangles' removed (same test split, all labels)."""
    train = synthetic.generate(32, seed=21)
    test = synthetic.generate(test_images, seed=22)
    triangle = synthetic.CLASS_NAMES.index("triangle")

    def without(image: synthetic.SyntheticImage) -> synthetic.SyntheticImage:
        return replace(image, labels=[x for x in image.labels if not x.startswith(f"{triangle} ")])

    yamls = []
    for name, images in (("full", train), ("no-triangles", [without(i) for i in train])):
        synthetic.write_yolo_dir(root / name, images[:26], "train")
        synthetic.write_yolo_dir(root / name, images[26:], "val")
        yamls.append(synthetic.write_yolo_dir(root / name, test, "test"))
    return yamls[0], yamls[1]


def evaluate_once(
    candidate: Path, champion: Path, data_yaml: Path, work: Path, *, evidence: bool, pictures: int
) -> float:
    """Seconds for one evaluation's work (validation, bootstrap, and evidence if asked)."""
    from activities.evaluation.bootstrap import paired_bootstrap
    from activities.evaluation.compare import compare_images
    from activities.evaluation.evidence import draw_picture
    from activities.evaluation.validate import run_val

    options = EvaluationOptions(bootstrap_resamples=200, evidence_images=pictures)
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    common = dict(
        data_yaml=data_yaml, split="test", imgsz=IMGSZ, conf=options.conf, iou=options.iou,
        batch=16, device="cpu", workdir=work,
        boxes_conf=options.evidence_conf if evidence else None,
    )  # fmt: skip
    cand = run_val(candidate, plots_dir=work / "plots" if evidence else None, **common)
    champ = run_val(champion, **common)
    paired_bootstrap(
        cand.stats, champ.stats, resamples=options.bootstrap_resamples, seed=0, level=0.95
    )
    if evidence:
        ranked = compare_images(cand.stats, champ.stats, conf=options.evidence_conf, keep=pictures)
        aligned = champ.stats.aligned_to(cand.stats.files)
        for direction, entries, indices in (
            ("worse", ranked.comparison.worst, ranked.worst_indices),
            ("better", ranked.comparison.best, ranked.best_indices),
        ):
            for rank, (entry, index) in enumerate(zip(entries, indices, strict=True), start=1):
                draw_picture(
                    work, f"{direction}-{rank:02d}.png", index, entry,
                    (cand.stats, aligned), ("champion", cand.names),
                )  # fmt: skip
    return time.perf_counter() - started


def overall_only(candidate: ImageStats, champion: ImageStats, resamples: int) -> None:
    """The bootstrap loop as it was before per-class intervals (overall mAP50-95 only)."""
    from activities.evaluation.bootstrap import map50_95

    champion = champion.aligned_to(candidate.files)
    rng = np.random.default_rng(0)
    n = len(candidate.files)
    for _ in range(resamples):
        indices = rng.integers(0, n, size=n)
        map50_95(candidate, indices) - map50_95(champion, indices)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, 1 pair")
    parser.add_argument("--pairs", type=int, default=5, help="plain/evidence pairs")
    parser.add_argument("--test-images", type=int, default=100)
    parser.add_argument("--pictures", type=int, default=6, help="pictures each way")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap rounds")
    parser.add_argument("--workdir", type=Path, help="reuse the models trained there before")
    args = parser.parse_args()
    if args.quick:
        args.pairs, args.test_images, args.resamples = 1, 16, 100
    bootstrap_offline()
    from activities.evaluation.bootstrap import paired_bootstrap
    from activities.evaluation.validate import run_val

    root = args.workdir or Path(tempfile.mkdtemp(prefix="bench-evidence-"))
    print(f"work directory: {root}", flush=True)
    full, no_triangles = datasets(root / "data", args.test_images)
    epochs = 3 if args.quick else 30
    champion = train(full, root / "runs", "champion", epochs)
    candidate = train(no_triangles, root / "runs", "candidate", epochs)
    # Warm-up (not timed): first imports, model loading, dataset caches.
    evaluate_once(candidate, champion, full, root / "warm-up", evidence=True, pictures=1)
    times: dict[str, list[float]] = {"plain": [], "evidence": []}
    for pair in range(args.pairs):
        for kind in ("plain", "evidence"):
            work = root / f"work-{pair}-{kind}"
            seconds = evaluate_once(
                candidate, champion, full, work, evidence=kind == "evidence", pictures=args.pictures
            )
            times[kind].append(seconds)
            print(f"pair {pair + 1} {kind}: {seconds:.2f} s", flush=True)
    common = dict(data_yaml=full, split="test", imgsz=IMGSZ, conf=0.001, iou=0.7, batch=16)
    cand = run_val(candidate, device="cpu", workdir=root, **common)
    champ = run_val(champion, device="cpu", workdir=root, **common)
    before, after = [], []
    for _ in range(3):  # alternating, medians: the machine's load moves
        started = time.perf_counter()
        overall_only(cand.stats, champ.stats, args.resamples)
        before.append(time.perf_counter() - started)
        started = time.perf_counter()
        paired_bootstrap(cand.stats, champ.stats, resamples=args.resamples, seed=0, level=0.95)
        after.append(time.perf_counter() - started)
    plain, evidence = statistics.median(times["plain"]), statistics.median(times["evidence"])
    overall, per_class = statistics.median(before), statistics.median(after)
    print(f"test images: {args.test_images}; bootstrap {args.resamples} rounds: overall only "
          f"{overall:.2f} s, with per-class intervals {per_class:.2f} s")  # fmt: skip
    print(f"evaluation_seconds_plain={plain:.2f}")
    print(f"evaluation_seconds_with_evidence={evidence:.2f}")
    print(f"evidence_overhead_seconds={evidence - plain:.2f}")
    print(f"per_class_bootstrap_ratio={per_class / overall:.3f}")


if __name__ == "__main__":
    main()
