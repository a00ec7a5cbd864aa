"""Deterministic synthetic datasets (shapes on noise) and their object-storage layouts.

``from workers.dev import synthetic``: :func:`generate` makes images, :func:`upload` writes
them to object storage in YOLO, COCO or Roboflow layout.
"""

from workers.dev.synthetic.images import (
    CLASS_COLORS,
    CLASS_NAMES,
    Box,
    Layout,
    SyntheticImage,
    corrupt_bytes,
    data_yaml,
    generate,
    generate_one,
    stem_for,
    tiny_png,
    truncated_png,
    write_yolo_dir,
)
from workers.dev.synthetic.layouts import ROBOFLOW_SPLITS, UploadSummary, roboflow_split, upload

__all__ = [
    "CLASS_COLORS",
    "CLASS_NAMES",
    "ROBOFLOW_SPLITS",
    "Box",
    "Layout",
    "SyntheticImage",
    "UploadSummary",
    "corrupt_bytes",
    "data_yaml",
    "generate",
    "generate_one",
    "roboflow_split",
    "stem_for",
    "tiny_png",
    "truncated_png",
    "upload",
    "write_yolo_dir",
]
