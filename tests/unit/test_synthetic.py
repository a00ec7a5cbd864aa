"""The synthetic dataset generator: determinism, growth, label validity, local YOLO dirs."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from workers.dev.synthetic.images import (
    CLASS_COLORS,
    CLASS_NAMES,
    MAX_OBJECTS,
    corrupt_bytes,
    generate,
    generate_one,
    stem_for,
    tiny_png,
    truncated_png,
    write_yolo_dir,
)


def _decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def test_same_seed_and_index_give_identical_bytes() -> None:
    first, second = generate(6, seed=3), generate(6, seed=3)
    assert [i.png for i in first] == [i.png for i in second]
    assert [i.labels for i in first] == [i.labels for i in second]
    assert [i.stem for i in first] == [i.stem for i in second]


def test_start_offset_matches_a_longer_run_so_datasets_can_grow() -> None:
    full = generate(8, seed=5)
    grown = generate(5, seed=5) + generate(3, seed=5, start=5)
    assert [(i.stem, i.png, i.labels) for i in grown] == [(i.stem, i.png, i.labels) for i in full]
    assert generate_one(6, seed=5) == full[6]


def test_seeds_and_indices_give_different_images() -> None:
    a, b = generate(4, seed=0), generate(4, seed=1)
    assert len({i.png for i in a + b}) == 8
    assert len({i.stem for i in a + b}) == 8
    assert a[0].stem == stem_for(0, 0) != b[0].stem


@pytest.mark.parametrize("size", [96, 128])
def test_images_are_rgb_png_of_the_requested_size(size: int) -> None:
    for item in generate(5, seed=2, size=size):
        image = _decode(item.png)
        assert image.format == "PNG"
        assert image.mode == "RGB"
        assert image.size == (size, size)
        assert item.size == size


def test_labels_are_valid_yolo_lines_inside_the_image() -> None:
    counts = []
    for item in generate(40, seed=7):
        assert 1 <= len(item.labels) <= MAX_OBJECTS
        counts.append(len(item.labels))
        assert item.label_text == "".join(f"{line}\n" for line in item.labels)
        for line in item.labels:
            fields = line.split()
            assert len(fields) == 5
            cls = int(fields[0])
            cx, cy, w, h = map(float, fields[1:])
            assert 0 <= cls < len(CLASS_NAMES)
            assert 0 < w <= 1 and 0 < h <= 1
            assert cx - w / 2 >= 0 and cx + w / 2 <= 1
            assert cy - h / 2 >= 0 and cy + h / 2 <= 1
            assert w * 96 >= 8  # objects are big enough to learn at 96 px
    assert len(set(counts)) > 1  # object count varies
    classes = {line.split()[0] for item in generate(40, seed=7) for line in item.labels}
    assert classes == {str(i) for i in range(len(CLASS_NAMES))}


def test_boxes_do_not_overlap_and_match_the_pixels() -> None:
    for item in generate(30, seed=11):
        boxes = item.boxes
        assert [b.yolo_line(item.size) for b in boxes] == item.labels
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                disjoint = a.x1 <= b.x0 or b.x1 <= a.x0 or a.y1 <= b.y0 or b.y1 <= a.y0
                assert disjoint, (item.stem, a, b)
        pixels = np.asarray(_decode(item.png), dtype=np.int16)
        for box in boxes:
            # The box centre lies inside every shape (circle, square, apex-up triangle) and its
            # dominant channel is the class colour's.
            cy, cx = (box.y0 + box.y1) // 2, (box.x0 + box.x1) // 2
            centre = pixels[cy - 1 : cy + 2, cx - 1 : cx + 2].reshape(-1, 3).mean(axis=0)
            assert int(np.argmax(centre)) == int(np.argmax(CLASS_COLORS[box.cls])), item.stem


def test_invalid_arguments_are_rejected() -> None:
    with pytest.raises(ValueError):
        generate(-1)
    with pytest.raises(ValueError):
        generate(1, start=-1)
    with pytest.raises(ValueError):
        generate(1, size=16)
    assert generate(0) == []


def test_write_yolo_dir_makes_an_ultralytics_dataset(tmp_path: Path) -> None:
    train, val = generate(4, seed=1), generate(2, seed=1, start=4)
    write_yolo_dir(tmp_path, train, "train")
    data = write_yolo_dir(tmp_path, val, "val")
    doc = yaml.safe_load(data.read_text())
    assert doc["names"] == list(CLASS_NAMES)
    assert doc["nc"] == len(CLASS_NAMES)
    assert Path(doc["path"]) == tmp_path.resolve()
    assert (doc["train"], doc["val"]) == ("images/train", "images/val")
    for split, items in (("train", train), ("val", val)):
        for item in items:
            assert (tmp_path / "images" / split / f"{item.stem}.png").read_bytes() == item.png
            label = (tmp_path / "labels" / split / f"{item.stem}.txt").read_text()
            assert label == item.label_text


def test_write_yolo_dir_with_only_train_validates_on_train(tmp_path: Path) -> None:
    doc = yaml.safe_load(write_yolo_dir(tmp_path, generate(2), "train").read_text())
    assert doc["val"] == "images/train"


def test_bad_input_helpers() -> None:
    with pytest.raises(OSError):
        _decode(corrupt_bytes())
    assert corrupt_bytes(100) == corrupt_bytes(100)
    assert len(corrupt_bytes(100)) == 100
    assert _decode(tiny_png(3, 5)).size == (3, 5)
    broken = truncated_png()
    assert broken.startswith(b"\x89PNG")
    with pytest.raises(OSError):
        _decode(broken)
