"""Signatures (HMAC-SHA256 over canonical JSON, key ids, rotation) and the restricted
unpickler, without servers: each refusal with its exact error."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from activities.contracts.bases import S3Base, parse_base
from activities.infra.errors import BadInputError, ConfigurationError, IntegrityError
from activities.infra.settings import Settings
from activities.infra.signing import (
    Keyring,
    canonical_bytes,
    ensure_key_file,
    keyring,
    parse_keyring,
    sidecar_bytes,
    vouched_sha256,
)
from tests.helpers.attacks import payload_is_live, planted_pickle

OLD = ("k2025", b"a" * 64)
NEW = ("k2026", b"b" * 64)


def test_signature_is_hmac_sha256_of_the_canonical_bytes_with_the_newest_key() -> None:
    signed = Keyring((OLD, NEW)).sign({"b": 1, "a": "x"})
    body = b'{"a":"x","b":1}'  # sorted keys, no whitespace: what a receiver recomputes
    assert canonical_bytes(signed) == body
    expected = hmac.new(NEW[1], body, hashlib.sha256).hexdigest()
    assert signed["hmac"] == {"key_id": "k2026", "hmac_sha256": expected}


def test_rotation_any_listed_key_verifies() -> None:
    signed_by_old = Keyring((OLD,)).sign({"version": 3})
    assert Keyring((OLD, NEW)).verify(signed_by_old, "doc") == {"version": 3}
    with pytest.raises(IntegrityError) as refused:
        Keyring((NEW,)).verify(signed_by_old, "models/m/v3/metadata.json")
    assert str(refused.value) == (
        "models/m/v3/metadata.json is signed with unknown key 'k2025': refusing to trust it "
        "(a rotated-out key, or not signed by this deployment)"
    )


def test_modified_or_unsigned_documents_are_refused() -> None:
    keys = Keyring((NEW,))
    signed = keys.sign({"sha256": "11" * 32, "version": 1})
    with pytest.raises(IntegrityError) as modified:
        keys.verify({**signed, "sha256": "22" * 32}, "bucket/key.json")
    assert str(modified.value) == (
        "bucket/key.json does not match its signature (key 'k2026'): modified after signing"
    )
    with pytest.raises(IntegrityError) as unsigned:
        keys.verify({"sha256": "11" * 32}, "bucket/key.json")
    assert str(unsigned.value) == "bucket/key.json is not signed: refusing to trust it"


def test_sidecar_vouches_only_for_its_own_key() -> None:
    keys = Keyring((NEW,))
    data = sidecar_bytes(keys, "runs/r/checkpoints/epoch-0002.pt", "ab" * 32)
    assert vouched_sha256(keys, data, "runs/r/checkpoints/epoch-0002.pt", "s") == "ab" * 32
    with pytest.raises(IntegrityError) as moved:
        vouched_sha256(keys, data, "runs/r/checkpoints/epoch-0009.pt", "sidecar")
    assert str(moved.value) == (
        "sidecar vouches for 'runs/r/checkpoints/epoch-0002.pt', "
        "not 'runs/r/checkpoints/epoch-0009.pt'"
    )


def test_key_file_rules(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="SENTINEL_SIGNING_KEY_FILE is not set"):
        keyring(Settings(signing_key_file=None))
    with pytest.raises(ConfigurationError, match="line 2: key 'k2' is shorter than 32 bytes"):
        parse_keyring("# comment\nk2:short\n", "keys")
    with pytest.raises(ConfigurationError, match="line 1: expected KEY_ID:SECRET"):
        parse_keyring("no separator here at all, just one long secret-ish line\n", "keys")
    generated = ensure_key_file(tmp_path / "state" / "signing.keys")
    assert generated.stat().st_mode & 0o777 == 0o600
    first = keyring(Settings(signing_key_file=generated))
    assert ensure_key_file(generated) == generated  # never replaced: same key next time
    assert keyring(Settings(signing_key_file=generated)).keys == first.keys
    assert first.signing_key_id == "dev" and len(first.keys[0][1]) == 64


def test_an_s3_base_without_its_digest_is_refused() -> None:
    with pytest.raises(ValueError, match="lacks its digest: write s3://BUCKET/KEY#sha256=HEX"):
        parse_base("s3://sentinel-data/uploads/evil.pt")
    with pytest.raises(ValueError, match="sha256\n  Field required"):
        S3Base.model_validate({"bucket": "sentinel-data", "key": "uploads/evil.pt"})


@pytest.fixture(scope="module")
def _offline() -> None:
    from activities.infra.yolo_env import bootstrap_offline

    bootstrap_offline()


@pytest.mark.usefixtures("_offline")
def test_planted_pickle_is_refused_by_the_restricted_loader(tmp_path: Path) -> None:
    from activities.training.base_model import load_model
    from activities.training.resume import check_checkpoint

    live_marker = tmp_path / "live-marker"
    assert payload_is_live(planted_pickle(tmp_path / "live.pt", live_marker), live_marker)

    marker = tmp_path / "marker"
    planted = planted_pickle(tmp_path / "epoch-0004.pt", marker)
    reason, checkpoint = check_checkpoint(planted, 6)
    assert checkpoint is None and reason is not None
    assert reason.startswith("not loadable (UnpicklingError: Weights only load failed"), reason
    with pytest.raises(BadInputError) as refused:
        load_model(str(planted), "uploads/evil.pt")
    assert str(refused.value).startswith("base model 'uploads/evil.pt' cannot be loaded"), refused
    assert "references types outside the supported Ultralytics checkpoint format" in str(
        refused.value
    )
    assert not marker.exists()


def test_signed_json_is_readable_and_verifiable(tmp_path: Path) -> None:
    keys = Keyring((NEW,))
    data = keys.signed_json(S3Base(bucket="sentinel-data", key="a.pt", sha256="cd" * 32))
    document = json.loads(data)
    assert document["hmac"]["key_id"] == "k2026" and data.startswith(b'{\n  "bucket"')
    assert keys.verified_model(data, S3Base, "doc").key == "a.pt"


def test_a_worker_without_its_keys_refuses_to_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SENTINEL_SIGNING_KEY_FILE"}
    env.update(SENTINEL_S3_ACCESS_KEY="unused", SENTINEL_S3_SECRET_KEY="unused")
    missing = subprocess.run(
        [sys.executable, "-m", "workers", "--queues", "cpu"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert missing.returncode == 2  # a configuration error, like TLS misconfigurations
    assert (
        missing.stderr.strip()
        .splitlines()[-1]
        .startswith("error: SENTINEL_SIGNING_KEY_FILE is not set")
    ), missing.stderr[-2000:]
    short = tmp_path / "signing.keys"
    short.write_text("k1:too-short\n")
    env["SENTINEL_SIGNING_KEY_FILE"] = str(short)
    bad = subprocess.run(
        [sys.executable, "-m", "workers", "--queues", "cpu"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1] == (
        f"error: {short} line 1: key 'k1' is shorter than 32 bytes (use 'openssl rand -hex 32')"
    )
