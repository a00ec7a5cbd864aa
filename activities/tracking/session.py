"""Everything that talks to MLflow, used only from the sink's thread (:mod:`.sink`).

One MLflow run per retrain: the run carries the tags ``sentinel.workflow_id`` and
``sentinel.workflow_run_id`` (the Temporal ids) and is found again by the latter, so every
attempt of every stage, on any worker, writes into the same run. Two workers creating it at
the same moment both keep the oldest and the newer one is deleted.

MLflow's own HTTP retries are turned off (``MLFLOW_HTTP_REQUEST_MAX_RETRIES=0``, unless set):
the sink retries, with pauses that never hold up anything else.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RUN_TAG = "sentinel.workflow_run_id"
WORKFLOW_TAG = "sentinel.workflow_id"
MODEL_TAG = "sentinel.model"
EPOCH_MARKER = "epoch"
"""Metric logged with every epoch's batch (``step`` = epoch): the steps already logged."""

MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000
DIGEST_LENGTH = 32
"""MLflow stores at most 36 characters of a dataset digest: the sha256's first 32 hex digits
(the full sha256 is in the dataset's profile)."""


@dataclass(frozen=True)
class RunIdentity:
    """Which retrain a record belongs to."""

    model: str
    workflow_id: str
    workflow_run_id: str


class Session:
    """An ``MlflowClient`` plus the lookups this process has already made."""

    def __init__(self, tracking_uri: str, experiment_prefix: str, timeout_seconds: float) -> None:
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(math.ceil(timeout_seconds)))
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self.experiment_prefix = experiment_prefix
        self._experiments: dict[str, str] = {}
        self._runs: dict[str, str] = {}

    # ------------------------------------------------------------------ experiments and runs
    def experiment_id(self, model: str) -> str:
        """The experiment of ``model`` (created on first use)."""
        if model not in self._experiments:
            from mlflow.exceptions import MlflowException

            name = f"{self.experiment_prefix}{model}"
            found = self.client.get_experiment_by_name(name)
            if found is None:
                # MlflowException: created by another worker meanwhile.
                with contextlib.suppress(MlflowException):
                    # The MLflow UI shows experiments of this kind as model training (runs,
                    # charts), not as GenAI (traces).
                    self.client.create_experiment(
                        name,
                        tags={
                            MODEL_TAG: model,
                            "mlflow.experimentKind": "custom_model_development",
                        },
                    )
                found = self.client.get_experiment_by_name(name)
            if found is None:
                raise LookupError(f"MLflow experiment {name!r} could not be created")
            self._experiments[model] = str(found.experiment_id)
        return self._experiments[model]

    def find_run(self, model: str, workflow_run_id: str) -> str | None:
        """The MLflow run of a retrain (the oldest, should two exist), or None."""
        runs = self.client.search_runs(
            [self.experiment_id(model)],
            filter_string=f"tags.`{RUN_TAG}` = '{workflow_run_id}'",
            order_by=["attributes.start_time ASC"],
            max_results=10,
        )
        return str(runs[0].info.run_id) if runs else None

    def run_id(self, ident: RunIdentity) -> str:
        """The MLflow run of ``ident``: found by its tag, else created."""
        cached = self._runs.get(ident.workflow_run_id)
        if cached is not None:
            return cached
        found = self.find_run(ident.model, ident.workflow_run_id)
        if found is None:
            created = self.client.create_run(
                self.experiment_id(ident.model),
                run_name=f"{ident.workflow_id} {ident.workflow_run_id[:8]}",
                tags={
                    RUN_TAG: ident.workflow_run_id,
                    WORKFLOW_TAG: ident.workflow_id,
                    MODEL_TAG: ident.model,
                },
            )
            mine = str(created.info.run_id)
            found = self.find_run(ident.model, ident.workflow_run_id) or mine
            if found != mine:  # another worker created one first: theirs is the run
                self.client.delete_run(mine)
        self._runs[ident.workflow_run_id] = found
        return found

    # ------------------------------------------------------------------ logging
    def logged_epochs(self, run_id: str) -> set[int]:
        """Steps of the epoch marker: the epochs whose metrics are in the run already."""
        return {int(m.step) for m in self.client.get_metric_history(run_id, EPOCH_MARKER)}

    def log(
        self,
        run_id: str,
        *,
        metrics: dict[str, float] | None = None,
        step: int = 0,
        timestamp_ms: int,
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        """One ``log_batch`` (a retry sends identical values: MLflow keeps one copy)."""
        from mlflow.entities import Metric, Param, RunTag

        self.client.log_batch(
            run_id,
            metrics=[
                Metric(key, value, timestamp_ms, step)
                for key, value in (metrics or {}).items()
                if math.isfinite(value)
            ],
            params=[Param(k, v[:MAX_PARAM_LENGTH]) for k, v in (params or {}).items()],
            tags=[RunTag(k, v[:MAX_TAG_LENGTH]) for k, v in (tags or {}).items()],
        )

    def log_text(self, run_id: str, artifact_file: str, text: str) -> None:
        self.client.log_text(run_id, text, artifact_file)

    def log_bytes(self, run_id: str, artifact_file: str, data: bytes) -> None:
        """Upload ``data`` as ``artifact_file`` (written to a temporary file first)."""
        path = Path(artifact_file)
        with tempfile.TemporaryDirectory(prefix="sentinel-mlflow-") as tmp:
            local = Path(tmp) / path.name
            local.write_bytes(data)
            parent = str(path.parent) if str(path.parent) != "." else None
            self.client.log_artifact(run_id, str(local), parent)

    def log_dataset(
        self,
        run_id: str,
        *,
        name: str,
        digest: str,
        source_uri: str,
        context: str,
        profile: dict[str, Any] | None = None,
    ) -> None:
        """Record a dataset input (``mlflow.data``): name, digest, source and a profile."""
        import json

        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset
        from mlflow.entities import Dataset, DatasetInput, InputTag

        # MetaDataset leaves Dataset.profile unimplemented (Dataset is no ABC, so it builds);
        # the profile goes into the entity below.
        described = MetaDataset(  # type: ignore[abstract]
            source=resolve_dataset_source(source_uri), name=name, digest=digest[:DIGEST_LENGTH]
        ).to_dict()
        entity = Dataset(
            name=described["name"],
            digest=described["digest"],
            source_type=described["source_type"],
            source=described["source"],
            profile=json.dumps(profile, sort_keys=True) if profile else None,
        )
        self.client.log_inputs(
            run_id,
            datasets=[DatasetInput(entity, tags=[InputTag("mlflow.data.context", context)])],
        )

    def finish(self, run_id: str, status: str) -> None:
        """End the run (``FINISHED``, ``FAILED``, ``KILLED``)."""
        self.client.set_terminated(run_id, status=status, end_time=int(time.time() * 1000))
