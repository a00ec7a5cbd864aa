"""The ``sentinel`` console script run as a user would: a child process, exit code and output."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from tests.helpers.stack import REPO_ROOT, Queues


async def sentinel_cli(queues: Queues, *args: str, timeout: float = 300) -> tuple[int, str, str]:
    """``sentinel ARGS`` on the test's queues; returns ``(exit code, stdout, stderr)``."""
    env = {
        **os.environ,
        "SENTINEL_CPU_TASK_QUEUE": queues.cpu,
        "SENTINEL_GPU_TASK_QUEUE": queues.gpu,
        "COLUMNS": "160",
    }
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "sentinel"),
        *args,
        cwd=REPO_ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    code = await proc.wait()
    return code, out.decode(), err.decode()
