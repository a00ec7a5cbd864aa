"""Which checkpoint a retried attempt resumes from.

A retry (worker SIGKILLed, node lost, OOM, SIGTERM) reads the previous attempt's last heartbeat
details, then tries checkpoints newest first: the ones named there, plus any newer one found
under ``runs/{workflow_id}/checkpoints/`` (uploaded but not yet heartbeated when the worker
died). Each candidate is downloaded, checked against its sha256 (the heartbeated one, from the
workflow's own history, else the one its signed sidecar ``epoch-NNNN.pt.sig.json`` vouches
for: a checkpoint found by listing without a valid sidecar is ignored, never unpickled) and
opened with Ultralytics' restricted loader (``weights_only=True`` plus its class allowlist):
it must be an Ultralytics training checkpoint *with* optimizer state (a stripped one would
silently start over in Ultralytics 8.4), for the same ``epochs`` (Ultralytics cannot change
it on resume), and not at the final epoch (nothing would be left to resume). A mid-epoch
checkpoint (``epoch-NNNN-sample-S.pt``) stands between two epoch ones; its
``sentinel_mid_epoch`` section must name a position inside an epoch left to train. A
candidate that fails is logged and skipped; when none is left the run starts over from the
base model. Nothing here raises on a bad checkpoint: no crash loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from activities.infra.errors import IntegrityError, NotFoundError, SentinelError
from activities.infra.signing import Keyring, sidecar_key, vouched_sha256
from activities.infra.storage import ObjectStore
from activities.training.checkpoints import (
    CheckpointRef,
    checkpoint_prefix,
    merge_refs,
    position_of_key,
)
from activities.training.resumable import MID_EPOCH_KEY

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PriorState:
    """What the previous attempt's last heartbeat said (all optional)."""

    checkpoints: list[CheckpointRef] = field(default_factory=list)
    batch: int | None = None
    had_details: bool = False

    @classmethod
    def from_details(cls, details: Sequence[Any]) -> PriorState:
        """Lenient: malformed details are logged and ignored, never fatal."""
        if not details:
            return cls()
        data = details[-1]
        if not isinstance(data, dict):
            log.warning("ignoring heartbeat details of unexpected type %s", type(data).__name__)
            return cls(had_details=True)
        refs = [CheckpointRef.from_dict(item) for item in data.get("checkpoints") or []]
        newest = CheckpointRef.from_dict(data) if data.get("key") else None
        batch = data.get("batch")
        return cls(
            checkpoints=merge_refs([r for r in refs if r is not None], newest),
            batch=batch if isinstance(batch, int) and batch >= 1 else None,
            had_details=True,
        )


@dataclass(frozen=True)
class Selection:
    """The checkpoint to resume from (None: start over) and what was rejected, with reasons."""

    path: Path | None = None
    ref: CheckpointRef | None = None
    rejected: list[tuple[CheckpointRef, str]] = field(default_factory=list)
    remaining: list[CheckpointRef] = field(default_factory=list)


def check_checkpoint(path: Path, epochs: int) -> tuple[str | None, dict[str, Any] | None]:
    """``(reason it cannot be resumed or None, checkpoint dict)``; restricted unpickling."""
    import torch

    # why: the allowlist Ultralytics itself uses under ULTRALYTICS_SAFE_LOAD (private, pinned
    # version); torch_safe_load would also rewrap non-dict files, hiding what they are.
    from ultralytics.nn.tasks import _SafeLoad

    try:
        with _SafeLoad.loading(path):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        return f"not loadable ({type(exc).__name__}: {str(exc)[:120]})", None
    if not isinstance(ckpt, dict):
        return "not an Ultralytics checkpoint (not a dict)", None
    if ckpt.get("optimizer") is None:
        return "optimizer state stripped (Ultralytics would start over)", None
    if not ckpt.get("ema") or not isinstance(ckpt.get("train_args"), dict):
        return "EMA weights or train_args missing", None
    epoch = ckpt.get("epoch")
    mid = ckpt.get(MID_EPOCH_KEY)
    if not isinstance(epoch, int) or epoch < (-1 if mid is not None else 0):
        return f"invalid epoch {epoch!r}", None
    trained_for = ckpt["train_args"].get("epochs")
    if trained_for != epochs:
        return f"trained for epochs={trained_for}, request asks {epochs}", None
    if mid is not None:
        return _check_mid_epoch(mid, epoch), ckpt
    if epoch + 1 >= epochs:
        return "saved at the final epoch: nothing left to resume", None
    return None, ckpt


def _check_mid_epoch(mid: Any, epoch: int) -> str | None:
    """Why a mid-epoch section cannot be resumed (None: it can)."""
    try:
        in_epoch, samples, order = int(mid["epoch"]), int(mid["samples"]), list(mid["order"])
        has_state = isinstance(mid["weights"], dict) and isinstance(mid["rng"], dict)
    except (KeyError, TypeError, ValueError):
        return "mid-epoch section malformed"
    if in_epoch != epoch + 1 or not has_state:
        return f"mid-epoch section of epoch {in_epoch} in a checkpoint after epoch {epoch + 1}"
    if not 0 < samples < len(order):
        return f"mid-epoch position {samples} outside its order of {len(order)} samples"
    return None


def candidates(
    store: ObjectStore, bucket: str, run_prefix: str, prior: PriorState
) -> list[CheckpointRef]:
    """Heartbeated checkpoints plus newer ones found in storage, newest first."""
    refs = list(prior.checkpoints)
    newest = refs[0].position if refs else (0, 0)
    try:
        for info in store.list(bucket, checkpoint_prefix(run_prefix)):
            position = position_of_key(info.key)
            if position is not None and position > newest:  # vouched by its sidecar
                refs.append(CheckpointRef(position[0], info.key, None, position[1]))
    except SentinelError as exc:
        log.warning("could not list checkpoints under %s: %s", run_prefix, exc)
    return merge_refs(refs)


def select_checkpoint(
    store: ObjectStore,
    bucket: str,
    run_prefix: str,
    prior: PriorState,
    dest_dir: Path,
    *,
    epochs: int,
    on_try: Callable[[CheckpointRef], None] | None = None,
    keys: Keyring | None = None,
) -> Selection:
    """Download and verify candidates newest first; the first good one wins.

    ``keys`` verifies the sidecars of candidates without a heartbeated digest (None: such
    candidates are ignored)."""
    if not prior.had_details:
        return Selection()
    rejected: list[tuple[CheckpointRef, str]] = []
    ordered = candidates(store, bucket, run_prefix, prior)
    for index, ref in enumerate(ordered):
        if on_try is not None:
            on_try(ref)
        dest = dest_dir / Path(ref.key).name
        reason: str | None
        try:
            expected = ref.sha256 or _vouched(store, keys, bucket, ref.key)
            sha = store.get_file(bucket, ref.key, dest, expected_sha256=expected)
            reason, _ = check_checkpoint(dest, epochs)
        except SentinelError as exc:  # IntegrityError, NotFoundError, TransientStorageError
            reason = f"{type(exc).__name__}: {exc}"
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
        if reason is None:
            verified = CheckpointRef(ref.epoch, ref.key, sha, ref.samples)
            remaining = [verified] + [r for r in ordered[index + 1 :]]
            for bad, why in rejected:
                log.warning("checkpoint %s (epoch %d) rejected: %s", bad.key, bad.epoch, why)
            log.info("resuming from checkpoint %s (%s)", ref.key, ref.describe())
            return Selection(dest, verified, rejected, remaining)
        rejected.append((ref, reason))
        dest.unlink(missing_ok=True)
    for bad, why in rejected:
        log.warning("checkpoint %s (epoch %d) rejected: %s", bad.key, bad.epoch, why)
    if ordered:
        log.warning(
            "no usable checkpoint among %d: starting over from the base model", len(ordered)
        )
    return Selection(rejected=rejected)


def _vouched(store: ObjectStore, keys: Keyring | None, bucket: str, key: str) -> str:
    """The digest the signed sidecar of ``key`` vouches for; IntegrityError when none does."""
    what = f"{bucket}/{sidecar_key(key)}"
    if keys is None:
        raise IntegrityError(f"no signing key to check {what}: ignored, never unpickled")
    try:
        data = store.get_bytes(bucket, sidecar_key(key), max_bytes=64 * 1024)
    except NotFoundError:
        raise IntegrityError(
            f"no signed sidecar vouches for {bucket}/{key}: ignored, never unpickled"
        ) from None
    return vouched_sha256(keys, data, key, what)


def delete_stale(store: ObjectStore, bucket: str, run_prefix: str) -> int:
    """First attempt of a run: checkpoints under the prefix belong to an earlier workflow run
    with the same id, never to this one; remove them so a retry cannot mistake them."""
    try:
        removed = store.delete_prefix(bucket, checkpoint_prefix(run_prefix))
    except SentinelError as exc:
        log.warning("could not remove stale checkpoints under %s: %s", run_prefix, exc)
        return 0
    if removed:
        log.info("removed %d stale checkpoint(s) under %s", removed, run_prefix)
    return removed


def delete_resume_points(store: ObjectStore, bucket: str, prefixes: list[str]) -> int:
    """Training completed: its checkpoints (and the control objects it consumed) serve nothing
    any more; remove them (best effort: ``registry gc`` sweeps what is left)."""
    removed = 0
    for prefix in prefixes:
        try:
            removed += store.delete_prefix(bucket, prefix)
        except SentinelError as exc:
            log.warning("could not remove %s after training: %s", prefix, exc)
    if removed:
        log.info("removed %d resume point(s) of a completed training", removed)
    return removed
