"""Planted pickles: ``.pt`` files whose unpickling would create a marker file.

What an attacker with write access to one bucket would put there. ``__reduce__`` makes the
unpickler call ``open(marker, "w")``: a full ``torch.load`` creates the marker (checked by
:func:`payload_is_live`), the restricted loader refuses the ``open`` global, so a test that
finds no marker proves nothing ran.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def planted_pickle(dest: Path, marker: Path, *, epoch: int = 4, epochs: int = 6) -> Path:
    """A torch checkpoint shaped like a resumable Ultralytics one, with the payload inside."""
    import torch

    checkpoint = {
        "epoch": epoch - 1,
        "model": _Payload(marker),
        "ema": _Payload(marker),
        "optimizer": {"state": {}, "param_groups": []},
        "train_args": {"epochs": epochs},
    }
    dest.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, dest)
    return dest


def payload_is_live(path: Path, marker: Path) -> bool:
    """Whether fully unpickling ``path`` (``weights_only=False``, in a child process) creates
    ``marker``: the control that makes "the marker never appears" mean something."""
    code = "import sys, torch; torch.load(sys.argv[1], map_location='cpu', weights_only=False)"
    subprocess.run([sys.executable, "-c", code, str(path)], check=False, timeout=120)
    return marker.exists()
