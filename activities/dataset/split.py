"""Stable split: an image's split is a pure function of its key relative to the dataset prefix.

``u = sha256(relative key)[:8] / 2**64`` is compared with cumulative ratios in the order
test, val, train: ``u < test`` -> test, ``u < test + val`` -> val, otherwise train. Adding
images never moves existing ones (each decision looks at one key only), so the test set of a
grown snapshot contains the old one; raising the test ratio only moves images *into* test.

Precedence: a pinned golden ``test_prefix`` first, then the source's own folders (Roboflow's
``train``/``valid``/``test``), then the hash.
"""

from __future__ import annotations

import hashlib

from activities.contracts.dataset import SplitName, SplitRatios

_SCALE = float(2**64)


def unit_hash(relative_key: str) -> float:
    """A uniform number in [0, 1) determined by ``relative_key`` alone."""
    digest = hashlib.sha256(relative_key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def hash_split(relative_key: str, ratios: SplitRatios) -> SplitName:
    """The split of ``relative_key`` under ``ratios`` (test, then val, then train)."""
    u = unit_hash(relative_key)
    if u < ratios.test:
        return "test"
    if u < ratios.test + ratios.val:
        return "val"
    return "train"


def assign_split(
    relative_key: str,
    ratios: SplitRatios,
    *,
    test_prefix: str | None = None,
    folder_split: SplitName | None = None,
) -> SplitName:
    """Golden prefix, else the source's own folder split, else :func:`hash_split`."""
    if test_prefix and relative_key.startswith(test_prefix):
        return "test"
    if folder_split is not None:
        return folder_split
    return hash_split(relative_key, ratios)
