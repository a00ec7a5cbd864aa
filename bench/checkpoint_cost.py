"""Benchmark (not a test): what one mid-epoch checkpoint costs, per model size.

For each architecture (``yolov8n/s/m.yaml`` by default) it builds the model, an AdamW
optimizer with state (one step) and an EMA copy, then times what
:meth:`activities.training.resumable.ResumableMixin.mid_epoch_snapshot` does on the training
thread (copying weights, EMA and optimizer state to CPU) and what the uploader thread does
(``torch.save`` of the state), and reports the checkpoint's size. Upload time is size over the
store's throughput (measured by ``bench/recovery.py``'s long case: ``checkpoint_upload_seconds``
and ``checkpoint_mb``).

The last lines are machine-readable, per architecture::

    checkpoint_copy_seconds_<arch>=<s>
    checkpoint_serialise_seconds_<arch>=<s>
    checkpoint_mb_<arch>=<MB>

Run: ``.venv/bin/python bench/checkpoint_cost.py [--arch yolov8n.yaml ...]`` (about a minute).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from copy import deepcopy
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def measure(arch: str, repeats: int) -> dict[str, float]:
    import torch

    from activities.infra.yolo_env import bootstrap_offline

    bootstrap_offline()
    from ultralytics import YOLO

    from activities.training.epoch_state import rng_states, to_cpu

    model = YOLO(arch).model
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()  # AdamW state: two tensors per parameter, as in training
    ema = deepcopy(model).eval()
    copies, saves, sizes = [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        state = {
            "ema": deepcopy(ema).to("cpu").half(),
            "optimizer": to_cpu(optimizer.state_dict()),
            "weights": to_cpu(model.state_dict()),
            "rng": rng_states(),
        }
        copies.append(time.perf_counter() - started)
        buffer = io.BytesIO()
        started = time.perf_counter()
        torch.save(state, buffer)
        saves.append(time.perf_counter() - started)
        sizes.append(buffer.tell() / 1e6)
    return {
        "copy": statistics.median(copies),
        "serialise": statistics.median(saves),
        "mb": statistics.median(sizes),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["yolov8n.yaml", "yolov8s.yaml",
                                                      "yolov8m.yaml"])  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    figures = {arch: measure(arch, args.repeats) for arch in args.arch}
    for arch, f in figures.items():
        name = arch.removesuffix(".yaml")
        print(f"checkpoint_copy_seconds_{name}={f['copy']:.3f}")
        print(f"checkpoint_serialise_seconds_{name}={f['serialise']:.3f}")
        print(f"checkpoint_mb_{name}={f['mb']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
