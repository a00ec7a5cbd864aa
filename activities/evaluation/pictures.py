"""Side-by-side pictures of one test image: candidate | champion | ground truth (PIL).

Each panel is the image scaled so that its longer side is between :data:`PANEL_MIN` and
:data:`PANEL_MAX` pixels (small test images are enlarged so boxes and labels stay legible),
with the boxes drawn in one colour per class and a title line above it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PANEL_MIN, PANEL_MAX = 320, 640
TITLE_HEIGHT = 28
GAP = 8
PALETTE = (
    (255, 56, 56), (50, 205, 50), (30, 144, 255), (255, 157, 151), (255, 178, 29),
    (207, 210, 49), (72, 249, 10), (146, 204, 23), (61, 219, 134), (26, 147, 52),
    (0, 212, 187), (44, 153, 168), (0, 194, 255), (52, 69, 147), (100, 115, 255),
    (0, 24, 236), (132, 56, 255), (82, 0, 133), (203, 56, 255), (255, 149, 200),
)  # fmt: skip
"""Class colours (class id modulo the palette)."""


@dataclass(frozen=True)
class Panel:
    """One panel: its title and its boxes.

    ``boxes``: rows ``x1 y1 x2 y2 conf cls`` (detections) or ``cls x1 y1 x2 y2`` (ground
    truth, ``truth=True``), in the original image's pixels.
    """

    title: str
    boxes: np.ndarray
    truth: bool = False


def panel_scale(width: int, height: int) -> float:
    """Factor bringing the longer side into [PANEL_MIN, PANEL_MAX]."""
    longest = max(width, height, 1)
    if longest < PANEL_MIN:
        return PANEL_MIN / longest
    if longest > PANEL_MAX:
        return PANEL_MAX / longest
    return 1.0


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size only
        return ImageFont.load_default()


Row = tuple[int, tuple[float, float, float, float], float | None]


def _rows(panel: Panel) -> list[Row]:
    """``(class id, box, confidence or None)`` of every box of ``panel``."""
    rows: list[Row] = []
    for row in np.asarray(panel.boxes, dtype=float).reshape(-1, 5 if panel.truth else 6):
        if panel.truth:
            cls, x1, y1, x2, y2 = row
            rows.append((int(cls), (x1, y1, x2, y2), None))
        else:
            x1, y1, x2, y2, conf, cls = row
            rows.append((int(cls), (x1, y1, x2, y2), float(conf)))
    return rows


def _draw_panel(
    image: Image.Image, panel: Panel, names: dict[int, str], scale: float
) -> Image.Image:
    size = (round(image.width * scale), round(image.height * scale))
    canvas = image.convert("RGB").resize(size, Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(canvas)
    font = _font(12)
    for cls, (x1, y1, x2, y2), conf in _rows(panel):
        colour = PALETTE[cls % len(PALETTE)]
        box = (x1 * scale, y1 * scale, x2 * scale, y2 * scale)
        draw.rectangle(box, outline=colour, width=2)
        label = names.get(cls, str(cls)) + (f" {conf:.2f}" if conf is not None else "")
        left, top, right, bottom = draw.textbbox((box[0], box[1]), label, font=font)
        lift = bottom - top + 2
        y = box[1] - lift if box[1] >= lift else box[1]
        draw.rectangle((box[0], y, box[0] + right - left + 4, y + lift), fill=colour)
        draw.text((box[0] + 2, y), label, fill=(255, 255, 255), font=font)
    return canvas


def side_by_side(image_path: Path, panels: list[Panel], names: dict[int, str]) -> Image.Image:
    """The panels next to each other, each under its title, on a white background."""
    with Image.open(image_path) as source:
        source.load()
        scale = panel_scale(source.width, source.height)
        drawn = [_draw_panel(source, panel, names, scale) for panel in panels]
    width = sum(p.width for p in drawn) + GAP * (len(drawn) - 1)
    height = TITLE_HEIGHT + max(p.height for p in drawn)
    sheet = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = _font(14)
    x = 0
    for panel, picture in zip(panels, drawn, strict=True):
        draw.text((x + 4, 6), panel.title, fill=(0, 0, 0), font=font)
        sheet.paste(picture, (x, TITLE_HEIGHT))
        x += picture.width + GAP
    return sheet


def write_side_by_side(
    dest: Path, image_path: Path, panels: list[Panel], names: dict[int, str]
) -> Path:
    """:func:`side_by_side` saved as PNG at ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    side_by_side(image_path, panels, names).save(dest, format="PNG")
    return dest
