"""CUDA out of memory: retry with the batch halved, down to a floor.

Ultralytics already halves the batch itself for an OOM during the first epoch (up to three
times, in process). Anything beyond that reaches the activity, which fails the attempt
retryably with the halved batch recorded in its heartbeat details, so the next attempt (on any
worker) resumes from the last checkpoint with the smaller batch. Below ``min_batch`` the error
is final.
"""

from __future__ import annotations

from activities.infra.errors import BadInputError


def is_out_of_memory(exc: BaseException) -> bool:
    """A CUDA (or other accelerator) out-of-memory error."""
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except ImportError:  # pragma: no cover - torch is always present on training workers
        pass
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "cublas_status_alloc_failed" in text
    )


def halved_batch(batch: int, floor: int) -> int:
    """The batch for the next attempt, or BadInputError when it would go below ``floor``."""
    smaller = batch // 2
    if smaller < max(1, floor):
        raise BadInputError(
            f"out of GPU memory at batch={batch} and halving would go below min_batch={floor}: "
            "use a smaller imgsz or model, a larger GPU, or lower min_batch"
        )
    return smaller
