"""Stable split: a pure function of the relative key, right proportions, precedence rules."""

from __future__ import annotations

import pytest

from activities.contracts.dataset import SplitRatios
from activities.dataset.split import assign_split, hash_split, unit_hash

KEYS = [f"images/img_{i:05d}.png" for i in range(20_000)]


def test_split_is_a_pure_function_of_the_key() -> None:
    ratios = SplitRatios()
    first = [hash_split(k, ratios) for k in KEYS[:500]]
    again = [hash_split(k, ratios) for k in reversed(KEYS[:500])]
    assert first == list(reversed(again))
    assert 0.0 <= unit_hash("x") < 1.0


@pytest.mark.parametrize(
    "ratios",
    [SplitRatios(), SplitRatios(train=0.6, val=0.2, test=0.2), SplitRatios(train=1, val=0, test=0)],
)
def test_proportions_follow_the_ratios(ratios: SplitRatios) -> None:
    splits = [hash_split(k, ratios) for k in KEYS]
    for name in ("train", "val", "test"):
        share = splits.count(name) / len(KEYS)
        assert share == pytest.approx(getattr(ratios, name), abs=0.015), name


def test_adding_keys_never_moves_old_ones_and_test_only_grows() -> None:
    ratios = SplitRatios()
    old = {k: hash_split(k, ratios) for k in KEYS[:1000]}
    grown = {k: hash_split(k, ratios) for k in KEYS[:1200]}
    assert all(grown[k] == split for k, split in old.items())
    old_test = {k for k, s in old.items() if s == "test"}
    assert old_test <= {k for k, s in grown.items() if s == "test"}


def test_raising_the_test_ratio_only_moves_images_into_test() -> None:
    small = {k: hash_split(k, SplitRatios(train=0.8, val=0.1, test=0.1)) for k in KEYS[:2000]}
    large = {k: hash_split(k, SplitRatios(train=0.7, val=0.1, test=0.2)) for k in KEYS[:2000]}
    assert {k for k, s in small.items() if s == "test"} <= {
        k for k, s in large.items() if s == "test"
    }


def test_golden_prefix_then_folder_then_hash() -> None:
    ratios = SplitRatios(train=1, val=0, test=0)
    assert assign_split("images/golden/a.png", ratios, test_prefix="images/golden/") == "test"
    assert assign_split("images/goldenish/a.png", ratios, test_prefix="images/golden/") == "train"
    assert (
        assign_split("valid/images/a.png", ratios, test_prefix="golden/", folder_split="val")
        == "val"
    )
    assert assign_split("golden/a.png", ratios, test_prefix="golden/", folder_split="val") == "test"
    assert assign_split("images/a.png", ratios) == "train"
