"""The evidence files of a version: what publish copies and draws into ``v{N}/evidence/``.

* the evaluation's pictures (plots, side-by-side comparisons), downloaded from the runs bucket
  verified against the digests the evaluation returned (a tampered or replaced object fails
  the publish with IntegrityError instead of entering the registry);
* ``results.png``: the training curves Ultralytics draws from training's ``results.csv``
  (training itself runs without plots, which would cost time at every epoch).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from activities.contracts.evidence import Evidence
from activities.infra.storage import ObjectStore

log = logging.getLogger(__name__)

EVIDENCE_DIR = "evidence"
"""Folder of the pictures, next to ``report.md`` (the report links them relatively)."""
TRAINING_CURVES = "results.png"


def artifact_name(file_name: str) -> str:
    """The artifact name (and path relative to ``report.md``) of an evidence file."""
    return f"{EVIDENCE_DIR}/{file_name}"


def fetch_evidence(store: ObjectStore, evidence: Evidence | None, work: Path) -> dict[str, Path]:
    """Download the evaluation's pictures into ``work``, each verified by its sha256.

    Returns ``{artifact name: local file}``.
    """
    if evidence is None:
        return {}
    found = {}
    for item in evidence.files:
        dest = work / item.name
        store.get_file(evidence.bucket, item.key, dest, expected_sha256=item.sha256)
        found[artifact_name(item.name)] = dest
    return found


def draw_training_curves(results_csv: Path, work: Path) -> Path | None:
    """Ultralytics' ``results.png`` of a training ``results.csv`` (None when nothing to draw)."""
    from activities.infra.yolo_env import bootstrap_offline

    bootstrap_offline()
    from ultralytics.utils.plotting import plot_results

    folder = work / "curves"  # plot_results draws every results*.csv of the folder
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(results_csv, folder / "results.csv")
    plot_results(file=str(folder / "results.csv"))
    drawn = folder / TRAINING_CURVES
    if not drawn.is_file():
        log.warning("no training curves drawn from %s", results_csv)
        return None
    return drawn
