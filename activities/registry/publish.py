"""Publishing a version exactly once per workflow run.

Protocol (every step is idempotent; a crash anywhere leaves a state the retry completes):

1. **Find our version.** ``publishes/{hash(workflow id, run id)}.json`` names the version a
   run claimed. Without it, claimed-but-unfinished versions (claims without metadata) are
   read: one naming this run is ours (a crash between claim and index).
2. **Claim a number.** ``claims/v{N}.json`` with ``{workflow_id, run_id}`` is created with
   If-None-Match, N = highest claimed + 1; a conflict means another publisher owns N, so try
   N+1. The claim is read back after a short settle (defence against a store that ignores
   the condition). Then the index (1.) is created; if an earlier attempt of the same run won
   that race, its version is used and our claim is left unused.
3. **Data first.** model.pt, model.onnx, results.csv, the evidence pictures (``evidence/``:
   the evaluation's, each verified by the digest it returned, and ``results.png`` drawn from
   training's curves) and report.md are uploaded under ``v{N}/`` (rewriting an unfinished
   attempt's objects).
4. **Metadata last**, created with If-None-Match: from this moment the version exists.
5. **Aliases**: production moves only when the gate promotes (the workflow's decision, ONNX
   parity included: :func:`workflows.gate.apply_parity`) and production is still the champion
   that was evaluated; ``latest.json`` is synced.

A claim without metadata (a run that died for good) is never reused: numbers only grow, so
a dead run leaves a gap, never a collision. Listings show only versions with metadata.

Over ~300 lines on purpose: the protocol's steps in the order they run, in one file.
"""

from __future__ import annotations

import contextvars
import json
import logging
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from activities.contracts.gate import GateDecision
from activities.contracts.registry import (
    ArtifactRecord,
    ModelVersion,
    PublishRequest,
    PublishResult,
)
from activities.infra import timings
from activities.infra.errors import IntegrityError, NotFoundError
from activities.infra.heartbeat import Progress, no_progress
from activities.registry import aliases, layout
from activities.registry.core import Registry
from activities.registry.evidence import (
    TRAINING_CURVES,
    artifact_name,
    draw_training_curves,
    fetch_evidence,
)
from activities.registry.model_signature import onnx_signature
from activities.registry.report import evaluation_csv, render_report
from activities.registry.version import version_metadata

log = logging.getLogger(__name__)

MAX_CLAIM_ATTEMPTS = 1000
CONTENT_TYPES = {".png": "image/png", ".md": "text/markdown", ".csv": "text/csv"}


class Publisher:
    """Runs the publish protocol against one :class:`Registry`."""

    def __init__(
        self,
        registry: Registry,
        *,
        settle_seconds: float = 0.05,
    ) -> None:
        self.registry = registry
        self.store = registry.store
        self.bucket = registry.bucket
        self.settle_seconds = settle_seconds

    # ------------------------------------------------------------------ 1. find
    def _identity(self, request: PublishRequest) -> dict[str, str]:
        return {"workflow_id": request.workflow_id, "run_id": request.run_id}

    def _read_json(self, key: str) -> dict[str, object] | None:
        try:
            return json.loads(self.store.get_bytes(self.bucket, key))
        except NotFoundError:
            return None

    def _version_in(self, key: str, doc: dict[str, object]) -> int:
        """The ``version`` recorded in ``doc`` (read from ``key``); anything else is corruption."""
        version = doc.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise IntegrityError(f"{key} records no integer version: {version!r}")
        return version

    def _owns(self, request: PublishRequest, claim: dict[str, object] | None) -> bool:
        if claim is None:
            return False
        return all(claim.get(k) == v for k, v in self._identity(request).items())

    def find_own_version(self, request: PublishRequest) -> int | None:
        """The version this workflow run already claimed, if any."""
        index_key = layout.publish_key(request.model, request.workflow_id, request.run_id)
        index = self._read_json(index_key)
        if index is not None:
            return self._version_in(index_key, index)
        for version in self.registry.scan(request.model).pending:
            if self._owns(request, self._read_json(layout.claim_key(request.model, version))):
                return self._index(request, version)
        return None

    # ------------------------------------------------------------------ 2. claim
    def next_free_version(self, model: str) -> int:
        """The first number above every claimed one (a hint: the claim decides)."""
        return self.registry.scan(model).highest_claimed + 1

    def _index(self, request: PublishRequest, version: int) -> int:
        """Record ``version`` as this run's; returns the run's version (an earlier one wins)."""
        key = layout.publish_key(request.model, request.workflow_id, request.run_id)
        body = json.dumps({**self._identity(request), "version": version}, sort_keys=True)
        try:
            self.store.put_bytes(self.bucket, key, body.encode(), if_absent=True)
            return version
        except FileExistsError:
            existing = self._read_json(key)
            if existing is None:
                raise IntegrityError(f"{key} vanished while publishing") from None
            recorded = self._version_in(key, existing)
            if recorded != version:
                log.warning(
                    "v%s of %s claimed twice by one run; using v%s",
                    version,
                    request.model,
                    recorded,
                )
            return recorded

    def claim_version(self, request: PublishRequest) -> int:
        """Own a new version number for this run (conditional create of its claim)."""
        version = self.next_free_version(request.model)
        body = json.dumps(
            {
                **self._identity(request),
                "model": request.model,
                "claimed_at": request.created_at.isoformat(),
            },
            sort_keys=True,
        ).encode()
        for _ in range(MAX_CLAIM_ATTEMPTS):
            key = layout.claim_key(request.model, version)
            try:
                self.store.put_bytes(self.bucket, key, body, if_absent=True)
            except FileExistsError:
                if not self._owns(request, self._read_json(key)):  # ours: a lost reply
                    version += 1
                    continue
            if self.settle_seconds:
                time.sleep(self.settle_seconds)
            if not self._owns(request, self._read_json(key)):
                log.warning("claim %s was overwritten: the store ignored If-None-Match", key)
                version += 1
                continue
            return self._index(request, version)
        raise IntegrityError(f"could not claim a version of {request.model!r}")

    # ------------------------------------------------------------------ 3-4. data, metadata
    def _final_gate(self, request: PublishRequest) -> GateDecision:
        """The workflow's decision, blocked when production moved since the evaluation.

        ONNX parity is part of the decision already (``PublishRequest`` refuses a promoting
        gate with a failed parity check); only the registry's present state is checked here.
        """
        gate = request.gate
        if gate.promote:
            current = self.registry.production_version(request.model)
            evaluated = request.evaluation.champion_version
            if current != evaluated:
                gate = gate.blocked(
                    f"production moved from {layout.version_label(evaluated)} to "
                    f"{layout.version_label(current)} since the evaluation; evaluate again "
                    "against the current production"
                )
        return gate

    def _upload(self, key: str, path: Path) -> ArtifactRecord:
        content_type = CONTENT_TYPES.get(path.suffix, "application/octet-stream")
        with timings.span("upload"):
            info = self.store.put_file(self.bucket, key, path, content_type=content_type)
        return ArtifactRecord(key=key, sha256=info.sha256 or "", size=info.size)

    def _stage_files(
        self, request: PublishRequest, work: Path, step: Progress, pool: ThreadPoolExecutor
    ) -> dict[str, Path | Future[Path | None]]:
        """Every data file of the version in ``work``, each verified: ``{name: local file}``.

        The training curves are drawn in ``pool`` while the other files are transferred (a
        second of matplotlib that would otherwise add to every publish): their entry is a
        future of the file (None: nothing drawn).
        """
        curves: Future[Path | None] | None = None
        csv = work / "results.csv"
        if request.results_csv_key is not None:  # verified against its recorded sha256
            with timings.span("download"):
                self.store.get_file(request.candidate.bucket, request.results_csv_key, csv)
            context = contextvars.copy_context()  # the drawing counts as bg.training_curves
            curves = pool.submit(context.run, _draw_curves, csv, work)
        else:
            csv.write_text(evaluation_csv(request))
        sources = {"model.pt": request.candidate, "model.onnx": request.export.onnx}
        staged: dict[str, Path | Future[Path | None]] = {}
        for done, (name, ref) in enumerate(sources.items(), start=1):
            staged[name] = work / name
            with timings.span("download"):
                self.store.get_file(ref.bucket, ref.key, work / name, expected_sha256=ref.sha256)
            step("download", done, len(sources))
        staged["results.csv"] = csv
        if curves is not None:
            staged[artifact_name(TRAINING_CURVES)] = curves
        with timings.span("download"):
            evidence = fetch_evidence(self.store, request.evaluation.evidence, work / "evidence")
        staged.update(evidence)
        return staged

    def write_version(
        self, request: PublishRequest, version: int, progress: Progress | None = None
    ) -> ModelVersion:
        """Upload the data objects of ``version``, then create its metadata (last)."""
        step = progress or no_progress
        model = request.model
        artifacts: dict[str, ArtifactRecord] = {}
        with (
            tempfile.TemporaryDirectory(prefix="sentinel-publish-") as tmp,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish-curves") as pool,
        ):
            work = Path(tmp)
            staged = self._stage_files(request, work, step, pool)
            onnx = staged["model.onnx"]
            assert isinstance(onnx, Path)  # downloaded, never drawn
            signature = onnx_signature(
                onnx,
                request.imported.task if request.imported else request.snapshot.task,
                request.snapshot.class_names,
            )
            for done, (name, entry) in enumerate(staged.items(), start=1):
                if isinstance(entry, Future):
                    with timings.span("curves_wait"):
                        drawn = entry.result()
                    if drawn is None:
                        continue
                    entry = drawn
                artifacts[name] = self._upload(layout.artifact_key(model, version, name), entry)
                step("upload", done, len(staged))
            gate = self._final_gate(request)
            (work / "report.md").write_text(render_report(request, version, gate, artifacts))
            artifacts["report.md"] = self._upload(
                layout.artifact_key(model, version, "report.md"), work / "report.md"
            )
        meta = version_metadata(request, version, gate, artifacts, signature)
        self.write_metadata(meta)
        return meta

    def write_metadata(self, meta: ModelVersion) -> None:
        """Create ``metadata.json`` (If-None-Match): the moment the version starts to exist."""
        self.store.put_bytes(
            self.bucket,
            layout.metadata_key(meta.model, meta.version),
            self.registry.encode(meta),  # signed: it vouches for every file of the version
            content_type="application/json",
            if_absent=True,
        )

    # ------------------------------------------------------------------ the whole protocol
    def publish(self, request: PublishRequest, progress: Progress | None = None) -> PublishResult:
        """Register the run's candidate; a retry returns the version of the first attempt.

        ``progress(stage, done, total)`` is called around the artifact transfers.
        """
        model = request.model
        version = self.find_own_version(request)
        created = False
        if version is None:
            version = self.claim_version(request)
        try:
            meta = self.registry.metadata(model, version)
        except NotFoundError:
            try:
                meta = self.write_version(request, version, progress)
                created = True
            except FileExistsError:  # a concurrent attempt of this run finished first
                meta = self.registry.metadata(model, version)
        if (meta.workflow_id, meta.run_id) != (request.workflow_id, request.run_id):
            raise IntegrityError(
                f"{model} v{version} belongs to workflow {meta.workflow_id} run {meta.run_id}"
            )
        promoted, reason = meta.gate.promote, meta.gate.reason
        if promoted:
            try:
                aliases.append(
                    self.registry,
                    model,
                    version=version,
                    action="publish",
                    reason=meta.gate.reason,
                    request_id=f"publish:{meta.workflow_id}:{meta.run_id}",
                    at=meta.created_at,
                    expect_current=meta.champion_version,
                )
            except aliases.ProductionMovedError as exc:
                promoted, reason = False, f"not promoted: {exc} (gate: {meta.gate.reason})"
        latest = self.registry.sync_latest(model) or version
        return PublishResult(
            model=model,
            version=version,
            promoted=promoted,
            reason=reason,
            created=created,
            production_version=self.registry.production_version(model),
            latest_version=latest,
            metadata_key=layout.metadata_key(model, version),
            bucket=self.bucket,
            artifacts=layout.artifact_keys(
                {name: record.key for name, record in meta.artifacts.items()},
                metadata_key=layout.metadata_key(model, version),
            ),
        )


def _draw_curves(results_csv: Path, work: Path) -> Path | None:
    with timings.span("training_curves"):
        return draw_training_curves(results_csv, work)
