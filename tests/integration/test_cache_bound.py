"""The local cache bound with real assemblies and materializations (real S3 server).

A snapshot a training is using stays whole whatever the bound; what nobody uses goes, least
recently used first, after each assembly or materialization.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from activities.contracts.dataset import AssembleRequest, MinCounts
from activities.dataset import assemble, materialize_snapshot
from activities.dataset.cache_bound import usage
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from workers.dev import synthetic


def _request(prefix: str) -> AssembleRequest:
    return AssembleRequest(
        dataset=f"bound-{uuid.uuid4().hex[:8]}",
        prefix=prefix,
        min_counts=MinCounts(train=0, val=0, test=0),
    )


def _upload(store: ObjectStore, settings: Settings, seed: int) -> str:
    prefix = f"datasets/bound-{uuid.uuid4().hex[:8]}"
    synthetic.upload(store, settings.data_bucket, prefix, layout="yolo", count=24, seed=seed)
    return prefix


def test_the_bound_holds_and_never_evicts_a_snapshot_in_use(
    settings: Settings, store: ObjectStore, tmp_path: Path
) -> None:
    unbounded = settings.model_copy(update={"cache_dir": tmp_path / "cache"})
    first = assemble(store, unbounded, _request(_upload(store, settings, seed=31)))
    one_dataset = usage(unbounded.cache_dir)
    bound = int(one_dataset * 1.3)
    bounded = unbounded.model_copy(update={"cache_max_gb": bound / 2**30})

    with materialize_snapshot(store, bounded, first.snapshot) as training:  # a training on it
        second = assemble(store, bounded, _request(_upload(store, settings, seed=32)))
        assert usage(bounded.cache_dir) <= bound
        images = sorted((training.root / "images").rglob("*.png"))
        assert len(images) == 24 and all(p.stat().st_size > 0 for p in images)
        assert (training.root / ".complete").is_file()

    with materialize_snapshot(store, bounded, second.snapshot) as later:
        assert usage(bounded.cache_dir) <= bound
        assert not training.root.exists()  # released, least recently used: evicted
        assert len(list((later.root / "images").rglob("*.png"))) == 24
    again = assemble(store, bounded, _request(_upload(store, settings, seed=33)))
    assert usage(bounded.cache_dir) <= bound and sum(again.counts.values()) == 24
