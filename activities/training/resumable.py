"""An Ultralytics trainer that can stop and resume *inside* an epoch, at a batch boundary.

Ultralytics resumes only at epoch starts, and its shuffled order of an epoch cannot be
recomputed after a restart. :func:`resumable_trainer` mixes :class:`ResumableMixin` into the
model's own trainer class (detect, segment, ...) to add:

- :class:`~activities.training.epoch_state.EpochSampler` in place of Ultralytics' shuffling:
  the order of epoch ``e`` is a permutation seeded by ``(seed, e)``, so it does not depend on
  what was drawn before (prefetching, a dataloader reset at ``close_mosaic``, a restart); a
  resumed epoch yields only the samples not yet trained;
- :meth:`ResumableMixin.mid_epoch_snapshot`: the training state at a batch boundary, copied
  to CPU on the training thread (weights, EMA, optimizer, scaler, epoch, samples done, the
  epoch's order, RNG states) and returned with a writer that serialises it later, off the
  training thread;
- :meth:`ResumableMixin.resume_training`: a checkpoint with a ``sentinel_mid_epoch`` section
  resumes at that epoch (even the first), skipping exactly the samples already trained.

Known differences from an uninterrupted run, inside the resumed epoch only: Ultralytics'
batch counter restarts at 0, so the warmup ramp (while ``ni <= nw``) and the gradient
accumulation cadence are computed from the shifted index. The samples seen are exact, and the
epoch's mean training losses (``results.csv``) cover the batches of both attempts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from copy import deepcopy
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from activities.training.epoch_state import (
    EpochSampler,
    MidEpoch,
    restore_rng_states,
    rng_states,
    to_cpu,
)

log = logging.getLogger(__name__)

MID_EPOCH_KEY = "sentinel_mid_epoch"
"""The checkpoint section that makes a checkpoint a mid-epoch one."""


class ResumableMixin:
    """Mixed into an Ultralytics ``BaseTrainer`` subclass (see the module docstring)."""

    # Attributes of Ultralytics' BaseTrainer this mixin reads (typed loosely on purpose).
    args: Any
    epoch: int
    start_epoch: int
    train_loader: Any
    resume: bool

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.epoch_sampler: EpochSampler | None = None
        self.mid_resume: MidEpoch | None = None
        self.batch_indices: list[int] = []
        """Dataset indices of the batch being trained (read by tests)."""
        self.samples_done = 0
        """Samples of the current epoch trained so far (including those of a prior attempt)."""
        self.at_step_boundary = True
        """No gradients are accumulated that the weights do not hold yet."""
        self._index_of: dict[str, int] = {}
        trainer: Any = self  # the mixin is only ever used mixed into a BaseTrainer
        trainer.add_callback("on_train_epoch_start", ResumableMixin._epoch_start)
        trainer.add_callback("on_train_epoch_end", ResumableMixin._epoch_end)
        self.epoch_batches = 0
        """Batches of the current epoch trained so far (including a prior attempt's)."""

    # ------------------------------------------------------------------ data
    def get_dataloader(self, dataset_path: str, batch_size: int = 16, rank: int = 0,
                       mode: str = "train") -> Any:  # fmt: skip
        base: Any = super()  # the Ultralytics trainer this is mixed into
        loader = base.get_dataloader(dataset_path, batch_size, rank, mode)
        if mode == "train":
            self._install_sampler(loader)
        return loader

    def _install_sampler(self, loader: Any) -> None:
        from torch.utils.data import RandomSampler, SequentialSampler

        batch_sampler: Any = getattr(getattr(loader, "batch_sampler", None), "sampler", None)
        inner = getattr(batch_sampler, "sampler", None)
        if not isinstance(inner, RandomSampler | SequentialSampler):
            log.warning("unexpected train sampler %s: no mid-epoch resume", type(inner).__name__)
            self.epoch_sampler = None
            return
        dataset = loader.dataset
        sampler = EpochSampler(
            len(dataset), shuffle=isinstance(inner, RandomSampler), seed=int(self.args.seed)
        )
        sampler.resume = self.mid_resume
        sampler.rebase(getattr(self, "epoch", self.start_epoch))
        batch_sampler.sampler = sampler
        self.epoch_sampler = sampler
        self._index_of = {str(f): i for i, f in enumerate(getattr(dataset, "im_files", []))}

    def _close_dataloader_mosaic(self) -> None:
        base: Any = super()
        base._close_dataloader_mosaic()
        if self.epoch_sampler is not None:  # the loader is reset next: a fresh pass, this epoch
            self.epoch_sampler.rebase(self.epoch)

    def _epoch_start(self) -> None:
        resumed = self.mid_resume is not None and self.mid_resume.epoch == self.epoch
        self.samples_done = self.mid_resume.samples if resumed and self.mid_resume else 0
        self.epoch_batches = self.mid_resume.batches if resumed and self.mid_resume else 0
        self.at_step_boundary = True
        if self.epoch_sampler is not None:
            self.epoch_sampler.consumer_epoch = self.epoch

    def _epoch_end(self) -> None:
        """The resumed epoch's mean losses cover its batches of both attempts: Ultralytics'
        running mean restarted with this attempt."""
        mid, t = self.mid_resume, cast(Any, self)
        if mid is None or mid.epoch != self.epoch or not mid.batches or mid.tloss is None:
            return
        here = self.epoch_batches - mid.batches
        if not isinstance(t.tloss, dict) or here <= 0:
            return
        total = mid.batches + here
        t.tloss = {
            key: (mid.tloss[key].to(value.device) * mid.batches + value * here) / total
            if key in mid.tloss
            else value
            for key, value in t.tloss.items()
        }

    def preprocess_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        files = batch.get("im_file") or []
        self.batch_indices = [self._index_of.get(str(f), -1) for f in files]
        self.samples_done += len(files)
        self.epoch_batches += 1
        self.at_step_boundary = False
        base: Any = super()
        return base.preprocess_batch(batch)

    def optimizer_step(self) -> None:
        base: Any = super()
        base.optimizer_step()
        self.at_step_boundary = True

    @property
    def samples_left(self) -> int:
        """Samples of the current epoch not trained yet (0: only its validation is left, which
        a mid-epoch checkpoint cannot hold: the epoch's own checkpoint follows)."""
        size = self.epoch_sampler.size if self.epoch_sampler else len(self.train_loader.dataset)
        return size - self.samples_done

    # ------------------------------------------------------------------ checkpoint
    def mid_epoch_snapshot(self) -> tuple[tuple[int, int], Callable[[Path], None]]:
        """``((epochs done, samples of the next epoch done), write(path))``.

        The state is copied here, on the training thread, at a batch boundary; ``write``
        serialises it and may run on any thread afterwards.
        """
        from ultralytics import __version__
        from ultralytics.utils.torch_utils import unwrap_model

        t: Any = self
        sampler = self.epoch_sampler
        order = sampler.order(self.epoch) if sampler is not None else []
        if self.mid_resume is not None and self.mid_resume.epoch == self.epoch:
            order = list(self.mid_resume.order)
        ema = deepcopy(t.ema.ema).to("cpu").half()
        if hasattr(ema, "criterion"):
            ema.criterion = None
        state = {
            "epoch": self.epoch - 1,  # epochs completed, as Ultralytics counts them
            "best_fitness": t.best_fitness,
            "stopper": {"best_fitness": t.stopper.best_fitness, "best_epoch": t.stopper.best_epoch},
            "model": None,
            "ema": ema,
            "updates": t.ema.updates,
            "optimizer": to_cpu(t.optimizer.state_dict()),
            "scaler": to_cpu(t.scaler.state_dict()),
            "train_args": dict(vars(self.args)),
            "train_metrics": {**(t.metrics or {}), "fitness": t.fitness},
            "train_results": t.read_results_csv(),
            "date": datetime.now().astimezone().isoformat(),
            "version": __version__,
            MID_EPOCH_KEY: {
                "epoch": self.epoch,
                "samples": self.samples_done,
                "batches": self.epoch_batches,
                "tloss": to_cpu(t.tloss),
                "dataset_size": len(order),
                "order": order,
                "weights": to_cpu(unwrap_model(t.model).state_dict()),
                "rng": rng_states(),
            },
        }

        def write(path: Path) -> None:
            import torch

            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            torch.save(state, tmp)
            tmp.replace(path)

        return (self.epoch, self.samples_done), write

    def resume_training(self, ckpt: dict[str, Any] | None) -> None:
        mid = (ckpt or {}).get(MID_EPOCH_KEY) if self.resume else None
        if ckpt is None or mid is None:
            base: Any = super()
            base.resume_training(ckpt)
            if self.epoch_sampler is not None:
                self.epoch_sampler.rebase(self.start_epoch)
            return
        t: Any = self
        # Ultralytics' own resume refuses a checkpoint inside the first epoch; this is its
        # body with the start epoch taken from the mid-epoch section.
        t._load_checkpoint_state(ckpt)
        from ultralytics.utils.torch_utils import unwrap_model

        model = unwrap_model(t.model)
        if getattr(getattr(model, "student_model", model).model[-1], "one2one_cv2", None):
            model.criterion = model.init_criterion()
            model.criterion.updates = mid["epoch"] - 1
            model.criterion.update()
        model.load_state_dict(mid["weights"])  # the live weights, not the EMA Ultralytics uses
        restore_rng_states(mid["rng"])
        self.start_epoch = int(mid["epoch"])
        order = [int(i) for i in mid["order"]]
        size = len(self.train_loader.dataset)
        if sorted(order) != list(range(size)) or not 0 <= int(mid["samples"]) <= size:
            log.warning("mid-epoch state does not fit this dataset: epoch %d starts over",
                        self.start_epoch + 1)  # fmt: skip
            return
        self.mid_resume = MidEpoch(
            self.start_epoch,
            int(mid["samples"]),
            order,
            int(mid.get("batches") or 0),
            mid.get("tloss"),
        )
        if self.epoch_sampler is not None:
            self.epoch_sampler.resume = self.mid_resume
            self.epoch_sampler.rebase(self.start_epoch)
        log.info("resuming inside epoch %d after %d of %d samples", self.start_epoch + 1,
                 self.mid_resume.samples, size)  # fmt: skip


def resumable_trainer(model: Any) -> type:
    """The model's own trainer class with :class:`ResumableMixin` mixed in."""
    base = model._smart_load("trainer")
    return type(f"Resumable{base.__name__}", (ResumableMixin, base), {})
