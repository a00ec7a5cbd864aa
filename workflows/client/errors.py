"""Errors the client side raises before or instead of reaching a workflow."""

from __future__ import annotations


class AlreadyRunningError(RuntimeError):
    """A one-per-model operation (retrain, import) is running; the message names it."""


class RetrainAlreadyRunningError(AlreadyRunningError):
    """A retrain for this model is running; the message names it."""

    def __init__(self, model_name: str, workflow_id: str, run_id: str | None) -> None:
        super().__init__(
            f"a retrain of {model_name!r} is already running (workflow {workflow_id}, run "
            f"{run_id or '?'}): follow it with 'sentinel retrain progress {model_name}', or "
            "start with attach to follow it instead"
        )
        self.workflow_id = workflow_id
        self.run_id = run_id


class ImportAlreadyRunningError(AlreadyRunningError):
    """An import of this model is running; the message names it."""

    def __init__(self, model_name: str, workflow_id: str) -> None:
        super().__init__(
            f"an import of {model_name!r} is already running (workflow {workflow_id}): wait "
            "for it, or cancel it in the Temporal UI"
        )
        self.workflow_id = workflow_id


MAX_REQUEST_BYTES = 256 * 1024
"""Largest RetrainRequest (JSON) the client sends: Temporal warns at 256 KB, fails at 2 MB."""


class RequestTooLargeError(ValueError):
    """The request's JSON exceeds :data:`MAX_REQUEST_BYTES`; large data travels by key."""

    def __init__(self, size: int, limit: int = MAX_REQUEST_BYTES) -> None:
        super().__init__(
            f"retrain request is {size} bytes of JSON, over the {limit} byte limit: "
            "pass large data by object key"
        )
        self.size = size
        self.limit = limit
