"""The local cache's bound on real files: least recently used first, never a file in use."""

from __future__ import annotations

import os
import time
from pathlib import Path

from activities.dataset.cache import ObjectCache
from activities.dataset.cache_bound import enforce_bound, lease, objects_in_use, usage

KB = 1024


def _object(cache: ObjectCache, name: str, size: int, used_ago: float) -> Path:
    path = cache.path(name.ljust(64, "0"))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    stamp = time.time() - used_ago
    os.utime(path, (stamp, stamp))
    return path


def _snapshot(cache_dir: Path, name: str, images: list[Path], used_ago: float) -> Path:
    """A materialized snapshot: hard links to objects plus a label file per image."""
    root = cache_dir / "datasets" / "parts" / name
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for image in images:
        os.link(image, root / "images" / image.name)
        (root / "labels" / f"{image.name}.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    lease(root).close()
    stamp = time.time() - used_ago
    os.utime(root.with_name(f"{name}.lease"), (stamp, stamp))
    return root


def test_usage_counts_hard_linked_files_once(tmp_path: Path) -> None:
    cache = ObjectCache(tmp_path)
    images = [_object(cache, f"a{i}", 10 * KB, 100) for i in range(3)]
    _snapshot(tmp_path, "s1", images, 50)
    labels = 3 * len("0 0.5 0.5 0.1 0.1\n")
    assert usage(tmp_path) == 30 * KB + labels


def test_least_recently_used_objects_go_first(tmp_path: Path) -> None:
    cache = ObjectCache(tmp_path)
    old = [_object(cache, f"o{i}", 10 * KB, 3600 + i) for i in range(4)]
    recent = [_object(cache, f"r{i}", 10 * KB, 60) for i in range(4)]
    result = enforce_bound(tmp_path, 45 * KB)
    assert (result.before, result.after, result.objects) == (80 * KB, 40 * KB, 4)
    assert not any(p.exists() for p in old) and all(p.exists() for p in recent)
    assert enforce_bound(tmp_path, None).objects == 0  # no bound: nothing to do


def test_a_leased_snapshot_and_its_objects_are_never_evicted(tmp_path: Path) -> None:
    cache = ObjectCache(tmp_path)
    in_use = [_object(cache, f"u{i}", 10 * KB, 7200) for i in range(3)]  # oldest of all
    idle = [_object(cache, f"i{i}", 10 * KB, 3600) for i in range(3)]
    fresh = [_object(cache, f"f{i}", 10 * KB, 10) for i in range(2)]
    used = _snapshot(tmp_path, "used", in_use, 7000)
    unused = _snapshot(tmp_path, "unused", idle, 3000)
    holder = lease(used)  # a training on it
    try:
        result = enforce_bound(tmp_path, 52 * KB)  # 30 KB of it in use
    finally:
        holder.close()
    assert result.after <= 52 * KB and result.datasets == 1
    assert used.is_dir() and all((used / "images" / p.name).is_file() for p in in_use)
    assert all(p.exists() for p in in_use)  # linked into the leased snapshot: kept
    assert not unused.exists() and not any(p.exists() for p in idle)  # LRU, then unlinked
    assert all(p.exists() for p in fresh)
    assert enforce_bound(tmp_path, 10 * KB).datasets == 1 and not used.exists()  # released


def test_no_eviction_while_another_operation_uses_the_objects(tmp_path: Path) -> None:
    cache = ObjectCache(tmp_path)
    objects = [_object(cache, f"o{i}", 10 * KB, 3600) for i in range(3)]
    with objects_in_use(tmp_path):  # an assembly elsewhere (another open file: another holder)
        result = enforce_bound(tmp_path, 10 * KB)
    assert result.objects == 0 and "in use" in result.skipped
    assert all(p.exists() for p in objects)
    assert enforce_bound(tmp_path, 10 * KB).objects == 2  # the last one to finish evicts
