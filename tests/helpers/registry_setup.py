"""Registry states on the real S3 server, for registry tests and alias race tests.

* :func:`stored_publish_request`: a publish request whose weights and ONNX file really exist
  in the runs bucket (stand-in bytes: the registry never looks inside them);
* :func:`published_chain`: versions published one after another, each promoted over the last;
* :func:`alias_history_problems`: what makes an alias history inconsistent (nothing, we hope);
* :class:`GatedStore`: the real :class:`ObjectStore`, holding the first writes of chosen keys
  at a barrier so that two writers write at the same instant (and, to play a store that
  ignores If-None-Match, dropping that condition).
"""

from __future__ import annotations

import threading
import uuid

from activities.contracts.dataset import SnapshotRef
from activities.contracts.registry import AliasEvent, PublishRequest, PublishResult
from activities.infra.settings import Settings
from activities.infra.storage import ObjectInfo, ObjectStore
from activities.registry import aliases, layout
from activities.registry.core import Registry
from activities.registry.publish import Publisher
from tests.helpers.factories import AT, SNAPSHOT, evaluation, export_result, gate, weights
from tests.helpers.outside import sha256_of
from tests.helpers.tiny_onnx import onnx_bytes
from workflows.gate import apply_parity


def stored_publish_request(
    store: ObjectStore,
    settings: Settings,
    model: str,
    workflow_id: str | None = None,
    *,
    promote: bool = True,
    champion_version: int | None = None,
    parity_passed: bool = True,
    payload: bytes | None = None,
    results_csv: bool = False,
    snapshot: SnapshotRef = SNAPSHOT,
) -> PublishRequest:
    """A publish request of ``model`` whose weights and ONNX file exist in the runs bucket."""
    workflow_id = workflow_id or f"retrain-{model}-{uuid.uuid4().hex[:6]}"
    payload = payload or f"weights of {workflow_id}".encode()
    prefix = f"runs/{workflow_id}"
    pt = store.put_bytes(settings.runs_bucket, f"{prefix}/weights/best.pt", payload)
    onnx_payload = onnx_bytes(b"onnx" + payload)
    onnx = store.put_bytes(settings.runs_bucket, f"{prefix}/export/m.onnx", onnx_payload)
    csv_key = None
    if results_csv:
        csv_key = f"{prefix}/results.csv"
        store.put_bytes(settings.runs_bucket, csv_key, b"epoch,mAP50-95\n1,0.5\n")
    # Digests of the bytes themselves, not what our upload recorded about them.
    pt_ref = weights(pt.key, sha256_of(payload), settings.runs_bucket)
    onnx_ref = weights(onnx.key, sha256_of(onnx_payload), settings.runs_bucket)
    champion = 0.5 if champion_version is not None else None
    exported = export_result(onnx_ref, pt_ref, passed=parity_passed)
    return PublishRequest(
        model=model,
        workflow_id=workflow_id,
        run_id=f"run-{uuid.uuid4().hex[:8]}",
        created_at=AT,
        candidate=pt_ref,
        export=exported,
        evaluation=evaluation(0.6 if promote else 0.4, champion, champion_version).model_copy(
            update={"model": model}
        ),
        gate=apply_parity(gate(promote), exported.parity),  # as RetrainWorkflow decides
        snapshot=snapshot,
        hyperparameters={"epochs": 3, "lr0": 0.01},
        epochs=3,
        results_csv_key=csv_key,
    )


def published_chain(
    store: ObjectStore,
    settings: Settings,
    model: str,
    versions: int,
    snapshot: SnapshotRef = SNAPSHOT,
) -> list[PublishResult]:
    """Publish v1..v``versions``, each promoted over the one before (production: the last)."""
    publisher = Publisher(Registry(store, settings.models_bucket))
    results = []
    for n in range(1, versions + 1):
        champion = n - 1 if n > 1 else None
        request = stored_publish_request(
            store, settings, model, champion_version=champion, snapshot=snapshot
        )
        results.append(publisher.publish(request))
    return results


class GatedStore(ObjectStore):
    """The real store; the first ``parties`` writes of keys starting with ``prefix`` wait for
    each other at a barrier, so they reach the S3 server at the same instant.

    ``ignore_conditions`` drops If-None-Match from those writes: a store that ignores the
    condition, where the last of two creates silently overwrites the first.
    """

    def __init__(
        self,
        base: ObjectStore,
        prefix: str,
        *,
        parties: int = 2,
        ignore_conditions: bool = False,
        timeout: float = 60.0,
    ) -> None:
        super().__init__(
            base.client,
            endpoint=base.endpoint,
            max_attempts=base.max_attempts,
            backoff_seconds=base.backoff_seconds,
            max_workers=base.max_workers,
        )
        self.prefix = prefix
        self.parties = parties
        self.ignore_conditions = ignore_conditions
        self.barrier = threading.Barrier(parties, timeout=timeout)
        self.arrivals = 0
        self._lock = threading.Lock()

    def put_bytes(
        self,
        bucket: str,
        key: str,
        data: bytes,
        *,
        content_type: str = "application/octet-stream",
        if_absent: bool = False,
    ) -> ObjectInfo:
        """Write ``key``; the first ``parties`` writers under ``prefix`` start together."""
        if key.startswith(self.prefix):
            with self._lock:
                arrival = self.arrivals
                self.arrivals += 1
            if arrival < self.parties:
                self.barrier.wait()
            if self.ignore_conditions:
                if_absent = False
        return super().put_bytes(bucket, key, data, content_type=content_type, if_absent=if_absent)


def alias_history_problems(store: ObjectStore, settings: Settings, model: str) -> list[str]:
    """What makes ``model``'s alias history inconsistent (empty: one consistent history).

    Entries numbered 1..n without gaps, each move starting from the version the move before
    it left, every named version existing, and ``production.json`` equal to the newest entry.
    """
    registry = Registry(store, settings.models_bucket)
    events = aliases.history(registry, model)
    problems = []
    if [e.seq for e in events] != list(range(1, len(events) + 1)):
        problems.append(f"entries {[e.seq for e in events]} are not 1..{len(events)}")
    for before, after in zip([None, *events], events, strict=False):
        left = before.version if before else None
        if after.previous_version != left:
            problems.append(f"entry {after.seq} moves from v{after.previous_version}, not v{left}")
    existing = registry.scan(model).versions
    problems += [
        f"entry {e.seq} names missing v{e.version}" for e in events if e.version not in existing
    ]
    if events:
        mirror = registry.read(layout.production_key(model), AliasEvent)
        if mirror != events[-1]:
            problems.append(f"production.json shows {mirror}, not entry {events[-1].seq}")
    return problems
