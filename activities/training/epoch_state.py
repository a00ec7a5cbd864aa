"""The state of an epoch in progress: its sample order, and what a mid-epoch checkpoint holds.

:class:`EpochSampler` orders epoch ``e`` by a permutation seeded by ``(seed, e)`` alone, so the
order does not depend on what was drawn before (prefetching, a dataloader reset at
``close_mosaic``, a restart), and a resumed epoch yields exactly the samples not yet trained.
Used by :mod:`activities.training.resumable`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

_SEED_STRIDE = 1_000_003  # a prime: (seed, epoch) pairs map to distinct generator seeds


@dataclass(frozen=True)
class MidEpoch:
    """Where a mid-epoch checkpoint stands: ``samples`` of epoch ``epoch`` (0-based) trained."""

    epoch: int
    samples: int
    order: list[int]
    batches: int = 0
    """Batches of the epoch trained before (for the epoch's mean training loss)."""
    tloss: Any = None
    """Their mean training losses (Ultralytics' ``tloss``)."""


def to_cpu(obj: Any) -> Any:
    """A deep copy with every tensor cloned to CPU (the live ones keep training)."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(to_cpu(v) for v in obj)
    return deepcopy(obj)


def rng_states() -> dict[str, Any]:
    """Python, NumPy, torch (and CUDA) generator states of this process, as plain types and
    tensors only: checkpoints are opened with ``torch.load(weights_only=True)``."""
    import numpy as np
    import torch

    legacy: Any = np.random.get_state()  # (kind, keys, pos, has_gauss, cached gaussian)
    kind, keys, pos, has_gauss, cached = legacy
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }  # fmt: skip
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    import numpy as np
    import torch

    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy = states["numpy"]
    keys = numpy["keys"].numpy().astype(np.uint32)
    np.random.set_state((numpy["kind"], keys, numpy["pos"], numpy["has_gauss"], numpy["cached"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class EpochSampler:
    """Indices of one epoch per pass; pass ``k`` after :meth:`rebase` (``e``) serves epoch
    ``e + k``. The order depends only on ``(seed, epoch)``."""

    def __init__(self, size: int, *, shuffle: bool, seed: int) -> None:
        self.size = size
        self.shuffle = shuffle
        self.seed = seed
        self.resume: MidEpoch | None = None
        self.consumer_epoch: int | None = None
        self._next_epoch = 0

    def order(self, epoch: int) -> list[int]:
        """The full order of ``epoch`` (0-based)."""
        if not self.shuffle:
            return list(range(self.size))
        import torch

        generator = torch.Generator()
        generator.manual_seed(self.seed * _SEED_STRIDE + epoch)
        return [int(i) for i in torch.randperm(self.size, generator=generator)]

    def rebase(self, epoch: int) -> None:
        """The next pass drawn serves ``epoch`` (a new iterator, or a resumed run)."""
        self._next_epoch = epoch

    def remaining(self, epoch: int) -> list[int]:
        """What epoch ``epoch`` still has to train (all of it unless it is the resumed one)."""
        if self.resume is not None and self.resume.epoch == epoch:
            return self.resume.order[self.resume.samples :]
        return self.order(epoch)

    def __iter__(self) -> Iterator[int]:
        epoch = self._next_epoch
        self._next_epoch += 1
        yield from self.remaining(epoch)

    def __len__(self) -> int:
        # Read by the dataloader when an epoch starts: the epoch being consumed decides
        # (passes for later epochs may already be prefetched).
        resume = self.resume
        if resume is not None and self.consumer_epoch == resume.epoch:
            return self.size - resume.samples
        return self.size
