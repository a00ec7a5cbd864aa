"""Checkpoint selection, upload and control logic against the real S3 server (no training)."""

from __future__ import annotations

import hashlib
import io
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import torch
from temporalio.testing import ActivityEnvironment

from activities.contracts.training import WriteControlRequest
from activities.infra.settings import Settings
from activities.infra.signing import Keyring, keyring, sidecar_bytes, sidecar_key
from activities.infra.storage import ObjectInfo, ObjectStore
from activities.training.callbacks import Heartbeat
from activities.training.checkpoints import CheckpointRef, CheckpointUploader, checkpoint_key
from activities.training.control import ControlActivities, ControlPoller
from activities.training.resume import PriorState, check_checkpoint, select_checkpoint

EPOCHS = 10


@pytest.fixture(scope="module", autouse=True)
def _offline() -> None:
    from activities.infra.yolo_env import bootstrap_offline

    bootstrap_offline()


def _prefix() -> str:
    return f"runs/unit-{uuid.uuid4().hex[:8]}/"


def _ckpt_file(path: Path, epoch: int, **overrides: Any) -> Path:
    """A small stand-in for an Ultralytics training checkpoint after ``epoch`` epochs."""
    ckpt = {
        "epoch": epoch - 1,  # Ultralytics stores the 0-based index of the last finished epoch
        "optimizer": {"state": {}, "param_groups": []},
        "ema": "ema-weights",
        "train_args": {"epochs": EPOCHS},
        **overrides,
    }
    torch.save(ckpt, path)
    return path


def _upload(
    store: ObjectStore,
    settings: Settings,
    prefix: str,
    tmp: Path,
    epoch: int,
    sign_with: Keyring | None = None,
    **kw: Any,
) -> CheckpointRef:
    key = checkpoint_key(prefix, epoch)
    path = _ckpt_file(tmp / f"{epoch}.pt", epoch, **kw)
    store.put_file(settings.runs_bucket, key, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()  # the bytes
    if sign_with is not None:  # as the uploader does
        store.put_bytes(
            settings.runs_bucket, sidecar_key(key), sidecar_bytes(sign_with, key, digest)
        )
    return CheckpointRef(epoch, key, digest)


def _details(refs: list[CheckpointRef], batch: int | None = 8) -> list[dict[str, Any]]:
    newest = refs[0]
    return [{**newest.to_dict(), "batch": batch, "checkpoints": [r.to_dict() for r in refs]}]


def _select(store: ObjectStore, settings: Settings, prefix: str, prior: PriorState, tmp: Path):
    return select_checkpoint(
        store, settings.runs_bucket, prefix, prior, tmp / "dl", epochs=EPOCHS,
        keys=keyring(settings),
    )  # fmt: skip


def test_prior_state_is_lenient() -> None:
    assert PriorState.from_details([]) == PriorState()
    assert PriorState.from_details(["junk"]) == PriorState(had_details=True)
    state = PriorState.from_details(
        [{"key": "k3", "epoch": 3, "sha256": "s3", "batch": 4,
          "checkpoints": [{"epoch": 2, "key": "k2"}, {"epoch": "x"}, {"epoch": 0, "key": "k0"}]}]
    )  # fmt: skip
    assert [r.key for r in state.checkpoints] == ["k3", "k2"]
    assert state.batch == 4 and state.had_details
    assert PriorState.from_details([{"batch": -1}]).batch is None


def test_newest_verified_checkpoint_wins(store: ObjectStore, settings: Settings, tmp_path: Path):
    prefix = _prefix()
    refs = [_upload(store, settings, prefix, tmp_path, e) for e in (3, 2)]
    selection = _select(store, settings, prefix, PriorState.from_details(_details(refs)), tmp_path)
    assert selection.ref == refs[0] and selection.path is not None and selection.path.exists()
    assert selection.rejected == [] and selection.remaining == refs


def test_corrupted_newest_falls_back_to_previous(
    store: ObjectStore, settings: Settings, tmp_path: Path
) -> None:
    prefix = _prefix()
    refs = [_upload(store, settings, prefix, tmp_path, e) for e in (3, 2)]
    garbage = b"\x00garbage" * 100  # overwritten, old sha256 metadata copied along
    store.client.put_object(settings.runs_bucket, refs[0].key, io.BytesIO(garbage), len(garbage),
                            metadata={"sha256": refs[0].sha256 or ""})  # fmt: skip
    selection = _select(store, settings, prefix, PriorState.from_details(_details(refs)), tmp_path)
    assert selection.ref == refs[1]
    assert [(r.epoch, "IntegrityError" in why) for r, why in selection.rejected] == [(3, True)]
    assert selection.remaining == [refs[1]]


def test_unresumable_checkpoints_are_skipped(
    store: ObjectStore, settings: Settings, tmp_path: Path
) -> None:
    prefix = _prefix()
    good = _upload(store, settings, prefix, tmp_path, 1)
    stripped = _upload(store, settings, prefix, tmp_path, 2, optimizer=None)
    other_epochs = _upload(store, settings, prefix, tmp_path, 3, train_args={"epochs": 99})
    final = _upload(store, settings, prefix, tmp_path, EPOCHS)
    missing = CheckpointRef(EPOCHS + 1, checkpoint_key(prefix, EPOCHS + 1), "0" * 64)
    prior = PriorState.from_details(_details([missing, final, other_epochs, stripped, good]))
    selection = _select(store, settings, prefix, prior, tmp_path)
    assert selection.ref == good
    reasons = {ref.epoch: why for ref, why in selection.rejected}
    assert "NotFoundError" in reasons[EPOCHS + 1]
    assert "final epoch" in reasons[EPOCHS]
    assert "epochs=99" in reasons[3]
    assert "optimizer state stripped" in reasons[2]


def test_nothing_usable_starts_over(store: ObjectStore, settings: Settings, tmp_path: Path):
    prefix = _prefix()
    bad = _upload(store, settings, prefix, tmp_path, 2, optimizer=None)
    selection = _select(store, settings, prefix, PriorState.from_details(_details([bad])), tmp_path)
    assert selection.path is None and selection.ref is None and len(selection.rejected) == 1


def test_newer_unheartbeated_upload_is_found_by_listing(
    store: ObjectStore, settings: Settings, tmp_path: Path
) -> None:
    prefix = _prefix()
    heartbeated = _upload(store, settings, prefix, tmp_path, 2)
    newer = _upload(  # the worker died before heartbeating it; its signed sidecar vouches
        store, settings, prefix, tmp_path, 4, sign_with=keyring(settings)
    )
    selection = _select(
        store, settings, prefix, PriorState.from_details(_details([heartbeated])), tmp_path
    )
    assert selection.ref == newer  # verified against the sha256 its sidecar vouches for


@pytest.mark.parametrize("sidecar", ["none", "other key", "copied from epoch 2"])
def test_listed_checkpoint_without_a_valid_sidecar_is_ignored(
    store: ObjectStore, settings: Settings, tmp_path: Path, sidecar: str
) -> None:
    prefix = _prefix()
    heartbeated = _upload(store, settings, prefix, tmp_path, 2, sign_with=keyring(settings))
    planted = _upload(store, settings, prefix, tmp_path, 4)  # written by someone without the key
    bucket, side = settings.runs_bucket, sidecar_key(planted.key)
    if sidecar == "other key":
        forger = Keyring((("dev", b"f" * 64),))  # the right key id, a guessed secret
        store.put_bytes(bucket, side, sidecar_bytes(forger, planted.key, planted.sha256 or ""))
    elif sidecar == "copied from epoch 2":
        store.put_bytes(bucket, side, store.get_bytes(bucket, sidecar_key(heartbeated.key)))
    selection = _select(
        store, settings, prefix, PriorState.from_details(_details([heartbeated])), tmp_path
    )
    assert selection.ref == heartbeated
    [(ref, why)] = selection.rejected
    assert ref.key == planted.key
    expected = {
        "none": f"no signed sidecar vouches for {bucket}/{planted.key}",
        "other key": f"{bucket}/{side} does not match its signature (key 'dev')",
        "copied from epoch 2": f"{bucket}/{side} vouches for '{heartbeated.key}'",
    }[sidecar]
    assert why.startswith(f"IntegrityError: {expected}")


def test_first_attempt_never_resumes(store: ObjectStore, settings: Settings, tmp_path: Path):
    prefix = _prefix()
    _upload(store, settings, prefix, tmp_path, 2)  # left over by an earlier run with this id
    assert _select(store, settings, prefix, PriorState(), tmp_path).path is None


def test_check_checkpoint_rejects_non_checkpoints(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"PK not a zip")
    assert "not loadable" in (check_checkpoint(junk, EPOCHS)[0] or "")
    torch.save([1, 2], tmp_path / "list.pt")
    assert "not a dict" in (check_checkpoint(tmp_path / "list.pt", EPOCHS)[0] or "")
    reason, ckpt = check_checkpoint(_ckpt_file(tmp_path / "ok.pt", 4), EPOCHS)
    assert reason is None and ckpt is not None and ckpt["epoch"] == 3


class GatedStore(ObjectStore):
    """The real store, but uploads wait for ``gate`` (to observe superseding)."""

    def __init__(self, inner: ObjectStore) -> None:
        super().__init__(inner.client, endpoint=inner.endpoint)
        self.gate = threading.Event()
        self.started = threading.Event()

    def put_file(self, bucket: str, key: str, path: Path, **kwargs: Any) -> ObjectInfo:
        self.started.set()
        self.gate.wait(30)
        return super().put_file(bucket, key, path, **kwargs)


def test_uploader_newest_supersedes_pending_and_keeps_three(
    store: ObjectStore, settings: Settings, tmp_path: Path
) -> None:
    gated = GatedStore(store)
    prefix = _prefix()
    calls: list[tuple[int, list[int]]] = []
    uploader = CheckpointUploader(
        gated, settings.runs_bucket, prefix, tmp_path / "staging",
        lambda ref, refs: calls.append((ref.epoch, [r.epoch for r in refs])),
    )  # fmt: skip
    last = tmp_path / "last.pt"
    _ckpt_file(last, 1)
    uploader.submit(last, 1)
    assert gated.started.wait(10)  # epoch 1 is uploading (held at the gate)
    for epoch in (2, 3):
        _ckpt_file(last, epoch)
        uploader.submit(last, epoch)  # 3 supersedes the pending 2
    assert not (tmp_path / "staging" / "epoch-0002.pt").exists()
    gated.gate.set()
    assert uploader.flush(30)
    for epoch in (4, 5):
        _ckpt_file(last, epoch)
        uploader.submit(last, epoch)
        assert uploader.flush(30)
    uploader.close()
    assert calls == [(1, [1]), (3, [3, 1]), (4, [4, 3, 1]), (5, [5, 4, 3])]
    keys = sorted(i.key for i in store.list(settings.runs_bucket, f"{prefix}checkpoints/"))
    assert keys == [checkpoint_key(prefix, e) for e in (3, 4, 5)]  # epoch 1 deleted
    path = tmp_path / "check.pt"
    store.get_file(settings.runs_bucket, checkpoint_key(prefix, 5), path)
    assert torch.load(path, weights_only=False)["epoch"] == 4


def test_heartbeat_details_always_carry_the_resume_state() -> None:
    sent: list[dict[str, Any]] = []
    refs = [CheckpointRef(2, "k2", "s2")]
    beat = Heartbeat(sent.append, checkpoints=refs, batch=8, min_interval=60)
    beat.beat("dataset", force=True, done=1)
    beat.beat("dataset", done=2)  # throttled
    assert len(sent) == 1
    assert sent[0]["key"] == "k2" and sent[0]["epoch"] == 2 and sent[0]["batch"] == 8
    assert sent[0]["checkpoints"] == [{"epoch": 2, "samples": 0, "key": "k2", "sha256": "s2"}]
    assert PriorState.from_details(sent).checkpoints == refs


def test_write_control_is_seen_by_the_poller(store: ObjectStore, settings: Settings) -> None:
    run_id = f"unit-{uuid.uuid4().hex[:8]}"
    poller = ControlPoller(store, settings.runs_bucket, f"runs/{run_id}/", interval=0)
    assert not poller.requested()
    result = ActivityEnvironment().run(
        ControlActivities(settings, store).write_control,
        WriteControlRequest(run_id=run_id, reason="enough"),
    )
    assert result.key == f"runs/{run_id}/control/stop_early"
    assert poller.requested() and poller.requested()
    other = f"runs/{run_id}-b/"
    throttled = ControlPoller(store, settings.runs_bucket, other, interval=3600)
    assert not throttled.requested()
    store.put_bytes(settings.runs_bucket, f"{other}control/stop_early", b"{}")
    assert not throttled.requested()  # not polled again within the interval
