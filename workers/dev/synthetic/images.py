"""Deterministic synthetic detection dataset: coloured shapes on noisy backgrounds.

Image ``i`` of seed ``s`` depends only on ``(s, i)`` (and the image size), never on how many
images are generated, so a dataset can grow: ``generate(n, seed=s, start=k)`` yields images
``k .. k+n-1``, identical to the same indices of any other call. Each class has its own shape
*and* colour so that a YOLO model learns them in a few dozen epochs from scratch.

Byte-for-byte stability holds for a given numpy / Pillow / zlib; that is all tests rely on.
:func:`workers.dev.synthetic.layouts.upload` writes a dataset to object storage in YOLO, COCO or
Roboflow layout.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from PIL import Image, ImageDraw

Layout = Literal["yolo", "coco", "roboflow"]

CLASS_NAMES: tuple[str, ...] = ("circle", "square", "triangle")
# Saturated, well separated hues per class (RGB); backgrounds stay low-saturation greys.
CLASS_COLORS: tuple[tuple[int, int, int], ...] = ((230, 40, 40), (40, 200, 60), (50, 90, 235))
MAX_OBJECTS = 3
_MIN_FRAC, _MAX_FRAC = 0.28, 0.45  # object side as a fraction of the image side


@dataclass(frozen=True)
class Box:
    """One object in pixels: class id and inclusive-exclusive corners ``[x0, x1) x [y0, y1)``."""

    cls: int
    x0: int
    y0: int
    x1: int
    y1: int

    def yolo_line(self, size: int) -> str:
        """``cls cx cy w h`` normalised to [0, 1] with 6 decimals."""
        cx, cy = (self.x0 + self.x1) / 2 / size, (self.y0 + self.y1) / 2 / size
        w, h = (self.x1 - self.x0) / size, (self.y1 - self.y0) / size
        return f"{self.cls} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"


@dataclass(frozen=True)
class SyntheticImage:
    """One generated image: ``stem`` (file name without suffix), PNG bytes and YOLO label lines."""

    stem: str
    png: bytes
    labels: list[str]
    index: int = 0
    size: int = 96
    boxes: tuple[Box, ...] = field(default=(), repr=False)

    @property
    def label_text(self) -> str:
        """The content of the YOLO ``.txt`` label file (one line per object, trailing newline)."""
        return "".join(f"{line}\n" for line in self.labels)


def stem_for(seed: int, index: int) -> str:
    """File stem of image ``index`` of ``seed`` (sortable, unique per seed and index)."""
    return f"syn_s{seed}_{index:06d}"


def _place_boxes(rng: np.random.Generator, size: int) -> list[tuple[int, int, int, int, int]]:
    """1..MAX_OBJECTS non-overlapping (cls, x0, y0, side) squares, by rejection sampling."""
    count = int(rng.integers(1, MAX_OBJECTS + 1))
    placed: list[tuple[int, int, int, int, int]] = []
    lo, hi = max(8, int(size * _MIN_FRAC)), max(9, int(size * _MAX_FRAC))
    for _ in range(count):
        for _attempt in range(30):
            side = int(rng.integers(lo, hi + 1))
            x0 = int(rng.integers(1, size - side))
            y0 = int(rng.integers(1, size - side))
            gap = 2  # keep objects apart so boxes never overlap
            if all(
                x0 + side + gap <= px
                or px + ps + gap <= x0
                or y0 + side + gap <= py
                or py + ps + gap <= y0
                for _, px, py, ps, _ in placed
            ):
                placed.append((int(rng.integers(len(CLASS_NAMES))), x0, y0, side, side))
                break
    return placed


def _draw(rng: np.random.Generator, size: int) -> tuple[Image.Image, list[Box]]:
    base = rng.integers(70, 170)  # grey level; a small tint keeps backgrounds varied
    tint = rng.integers(-15, 16, size=3)
    noise = rng.normal(0.0, 14.0, size=(size, size, 3))
    background = np.clip(base + tint + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(background, "RGB")
    draw = ImageDraw.Draw(image)
    boxes: list[Box] = []
    for cls, x0, y0, w, h in _place_boxes(rng, size):
        jitter = rng.integers(-20, 21, size=3)
        colour = tuple(int(c) for c in np.clip(np.array(CLASS_COLORS[cls]) + jitter, 0, 255))
        x1, y1 = x0 + w, y0 + h  # exclusive corner
        if CLASS_NAMES[cls] == "circle":
            draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=colour)
        elif CLASS_NAMES[cls] == "square":
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=colour)
        else:  # triangle, apex up; the polygon touches all four box edges
            draw.polygon(((x0 + w / 2 - 0.5, y0), (x0, y1 - 1), (x1 - 1, y1 - 1)), fill=colour)
        boxes.append(Box(cls, x0, y0, x1, y1))
    # Light sensor noise over everything so objects are not perfectly flat.
    pixels = np.asarray(image, dtype=np.float64) + rng.normal(0.0, 6.0, size=(size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB"), boxes


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=6)  # PNG from Pillow carries no timestamp
    return buffer.getvalue()


def generate_one(index: int, *, seed: int = 0, size: int = 96) -> SyntheticImage:
    """Image ``index`` of ``seed``: always the same bytes for the same arguments."""
    if index < 0 or seed < 0:
        raise ValueError(f"index and seed must be >= 0 (got index={index}, seed={seed})")
    if size < 32:
        raise ValueError(f"size must be >= 32 (got {size})")
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, size]))
    image, boxes = _draw(rng, size)
    return SyntheticImage(
        stem=stem_for(seed, index),
        png=_png(image),
        labels=[box.yolo_line(size) for box in boxes],
        index=index,
        size=size,
        boxes=tuple(boxes),
    )


def generate(count: int, *, seed: int = 0, start: int = 0, size: int = 96) -> list[SyntheticImage]:
    """Images ``start .. start+count-1`` of ``seed`` (``size`` x ``size`` PNG, RGB)."""
    if count < 0 or start < 0:
        raise ValueError(f"count and start must be >= 0 (got count={count}, start={start})")
    return [generate_one(i, seed=seed, size=size) for i in range(start, start + count)]


def data_yaml(**extra: object) -> bytes:
    """A ``data.yaml`` with our class names (plus ``extra`` keys such as train/val paths)."""
    body = {**extra, "nc": len(CLASS_NAMES), "names": list(CLASS_NAMES)}
    return yaml.safe_dump(body, sort_keys=False).encode()


def write_yolo_dir(root: Path, images: Iterable[SyntheticImage], split_name: str = "train") -> Path:
    """Write ``root/images/{split}/`` and ``root/labels/{split}/`` for a local Ultralytics run.

    ``root/data.yaml`` (absolute ``path``, ``train``/``val`` naming every split written so far)
    is rewritten on each call; a missing ``val`` points at ``train``. Returns the data.yaml path.
    """
    root = Path(root)
    image_dir, label_dir = root / "images" / split_name, root / "labels" / split_name
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    for item in images:
        (image_dir / f"{item.stem}.png").write_bytes(item.png)
        (label_dir / f"{item.stem}.txt").write_text(item.label_text)
    splits = sorted(p.name for p in (root / "images").iterdir() if p.is_dir())
    train = "train" if "train" in splits else splits[0]
    val = "val" if "val" in splits else "valid" if "valid" in splits else train
    out = root / "data.yaml"
    fields: dict[str, object] = {"path": str(root.resolve()), "train": f"images/{train}"}
    fields["val"] = f"images/{val}"
    if "test" in splits:
        fields["test"] = "images/test"
    out.write_bytes(data_yaml(**fields))
    return out


# ---------------------------------------------------------------------- bad inputs for tests
def corrupt_bytes(length: int = 256, *, seed: int = 0) -> bytes:
    """Bytes that are not any image format (deterministic), for ``*.png`` that must be rejected."""
    rng = np.random.default_rng(seed)
    return b"NOTANIMAGE" + rng.integers(0, 256, size=max(0, length - 10), dtype=np.uint8).tobytes()


def truncated_png(index: int = 0, *, seed: int = 0, keep: float = 0.5) -> bytes:
    """A real PNG cut short (valid signature, broken stream)."""
    png = generate_one(index, seed=seed).png
    return png[: max(16, int(len(png) * keep))]


def tiny_png(width: int = 4, height: int = 4, colour: Sequence[int] = (128, 128, 128)) -> bytes:
    """A valid but tiny solid PNG (e.g. below a minimum-size check)."""
    return _png(Image.new("RGB", (width, height), tuple(colour)))


__all__ = [
    "CLASS_COLORS",
    "CLASS_NAMES",
    "Box",
    "Layout",
    "SyntheticImage",
    "corrupt_bytes",
    "data_yaml",
    "generate",
    "generate_one",
    "stem_for",
    "tiny_png",
    "truncated_png",
    "write_yolo_dir",
]
