"""The client side: typed API for backend code, the `sentinel` CLI and live progress.

Runs outside workflows, so it may use infrastructure (settings, the Temporal connection),
but never a stage's code: everything happens through workflows.

``from workflows.client import SentinelClient`` is the entry point for backend code.
"""

from workflows.client.api import (
    RequestTooLargeError,
    RetrainAlreadyRunningError,
    RunSummary,
    SentinelClient,
)

__all__ = ["RequestTooLargeError", "RetrainAlreadyRunningError", "RunSummary", "SentinelClient"]
