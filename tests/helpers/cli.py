"""The ``sentinel`` console script run as a user would (a subprocess on the test's queues)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.helpers.stack import REPO_ROOT, Queues


async def sentinel_cli(
    queues: Queues, *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> tuple[int, str, str]:
    """Run ``sentinel ARGS``; returns (exit code, stdout, stderr)."""
    full_env = {
        **os.environ,
        "SENTINEL_CPU_TASK_QUEUE": queues.cpu,
        "SENTINEL_GPU_TASK_QUEUE": queues.gpu,
        "COLUMNS": "160",
        **(env or {}),
    }
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "sentinel"),
        *args,
        cwd=REPO_ROOT,
        env=full_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
