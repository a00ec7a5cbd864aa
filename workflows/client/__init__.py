"""The client side: typed API for backend code, the `sentinel` CLI and live progress.

Runs outside workflows, so it may use infrastructure (settings, the Temporal connection),
but never a stage's code: everything happens through workflows.

``from workflows.client import SentinelClient`` is the entry point for backend code.
"""

from workflows.client.api import RunSummary, SentinelClient
from workflows.client.downloads import Download, DownloadedFile, DownloadError
from workflows.client.errors import (
    MAX_REQUEST_BYTES,
    RequestTooLargeError,
    RetrainAlreadyRunningError,
)

__all__ = [
    "MAX_REQUEST_BYTES",
    "Download",
    "DownloadError",
    "DownloadedFile",
    "RequestTooLargeError",
    "RetrainAlreadyRunningError",
    "RunSummary",
    "SentinelClient",
]
