"""What RetrainWorkflow tells people through the notify activity (webhook), and where it
points them: the version's report once published, the evaluation's pictures while a person
must approve.

Deterministic: workflow API calls and pure functions of the run's results only.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows.retrain_steps import NOTIFY_RETRY

with workflow.unsafe.imports_passed_through():
    from activities.contracts import names
    from activities.contracts.evaluation import EvaluateResult
    from activities.contracts.notify import NotifyRequest
    from activities.contracts.registry import PublishResult

REPORT_FILE = "report.md"


def headline_metrics(evaluation: EvaluateResult) -> dict[str, float]:
    """The candidate's numbers a notification carries."""
    return {"map50_95": evaluation.candidate.map50_95, "map50": evaluation.candidate.map50}


def report_location(model: str, published: PublishResult) -> tuple[str | None, str | None]:
    """``(s3://bucket/key of report.md, command writing it locally)`` of a published version.

    ``(None, None)`` for a publish result recorded before it named its bucket.
    """
    key = published.artifacts.get(REPORT_FILE)
    if key is None or published.bucket is None:
        return None, None
    version = published.version
    command = f"sentinel models report {model} --version {version} --out {model}-v{version}"
    return f"s3://{published.bucket}/{key}", command


def evidence_location(evaluation: EvaluateResult) -> str | None:
    """``s3://bucket/prefix`` of the evaluation's pictures (None when none were made)."""
    evidence = evaluation.evidence
    return f"s3://{evidence.bucket}/{evidence.prefix}" if evidence else None


async def send(message: NotifyRequest, task_queue: str, ui_summary: str | None) -> None:
    """Run the notify activity (``ui_summary``: its Temporal UI summary); a failure is logged
    and changes nothing in the run."""
    try:
        await workflow.execute_activity(
            names.NOTIFY,
            message,
            task_queue=task_queue,
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=NOTIFY_RETRY,
            summary=ui_summary,
        )
    except ActivityError:
        workflow.logger.warning("notification failed; the run's outcome stands")
