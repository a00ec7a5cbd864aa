"""HMAC signatures of the documents that vouch for weights (registry metadata, alias history,
catalog records, checkpoint sidecars).

A digest in ``metadata.json`` proves nothing when whoever can rewrite ``model.pt`` can rewrite
``metadata.json`` beside it. A signed document carries, in its ``hmac`` field, an HMAC-SHA256
over its *canonical bytes* (the JSON of every other field, keys sorted, no whitespace, UTF-8)
and the id of the key that made it::

    {"...": "...", "hmac": {"key_id": "k2026", "hmac_sha256": "<64 hex>"}}

Keys come from ``SENTINEL_SIGNING_KEY_FILE``: one ``KEY_ID:SECRET`` per line (``#`` comments;
SECRET: at least 32 bytes, e.g. 64 hex digits from ``openssl rand -hex 32``). The last line
signs; every line verifies, so a key is rotated by appending the new one, re-signing or
letting old documents age out, then removing the old line. Workers without the file refuse to
sign or trust anything (:class:`~activities.infra.errors.ConfigurationError`); a document
without a signature, with an unknown key id or with a wrong HMAC is an
:class:`~activities.infra.errors.IntegrityError` naming the object.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from activities.infra.errors import ConfigurationError, IntegrityError
from activities.infra.settings import Settings

SIGNATURE_FIELD = "hmac"
"""The field of a signed JSON document that holds its signature."""

MIN_SECRET_BYTES = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

M = TypeVar("M", bound=BaseModel)


def canonical_bytes(document: dict[str, Any]) -> bytes:
    """The bytes a signature covers: ``document`` minus its signature, keys sorted, compact."""
    body = {k: v for k, v in document.items() if k != SIGNATURE_FIELD}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Keyring:
    """Signing keys, oldest first; the last one signs, any one verifies."""

    keys: tuple[tuple[str, bytes], ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise ConfigurationError("the signing key file holds no key")

    @property
    def signing_key_id(self) -> str:
        return self.keys[-1][0]

    def _mac(self, secret: bytes, document: dict[str, Any]) -> str:
        return hmac.new(secret, canonical_bytes(document), hashlib.sha256).hexdigest()

    def sign(self, document: dict[str, Any]) -> dict[str, Any]:
        """``document`` with its ``hmac`` field set by the newest key."""
        key_id, secret = self.keys[-1]
        signature = {"key_id": key_id, "hmac_sha256": self._mac(secret, document)}
        return {**document, SIGNATURE_FIELD: signature}

    def verify(self, document: dict[str, Any], what: str) -> dict[str, Any]:
        """``document`` without its signature, once the signature checks; else IntegrityError
        naming ``what`` (the object)."""
        signature = document.get(SIGNATURE_FIELD)
        if not isinstance(signature, dict):
            raise IntegrityError(f"{what} is not signed: refusing to trust it")
        key_id, mac = signature.get("key_id"), signature.get("hmac_sha256")
        secret = dict(self.keys).get(key_id) if isinstance(key_id, str) else None
        if secret is None:
            raise IntegrityError(
                f"{what} is signed with unknown key {key_id!r}: refusing to trust it "
                "(a rotated-out key, or not signed by this deployment)"
            )
        if not isinstance(mac, str) or not hmac.compare_digest(mac, self._mac(secret, document)):
            raise IntegrityError(
                f"{what} does not match its signature (key {key_id!r}): modified after signing"
            )
        return {k: v for k, v in document.items() if k != SIGNATURE_FIELD}

    def signed_json(self, model: BaseModel) -> bytes:
        """``model`` as signed, human-readable JSON (sorted keys, indented)."""
        document = self.sign(model.model_dump(mode="json"))
        return json.dumps(document, sort_keys=True, indent=2).encode() + b"\n"

    def verified_model(self, data: bytes, model_type: type[M], what: str) -> M:
        """Signed JSON ``data`` parsed as ``model_type``; IntegrityError naming ``what``."""
        try:
            document = json.loads(data)
        except ValueError:
            raise IntegrityError(f"{what} is not JSON") from None
        if not isinstance(document, dict):
            raise IntegrityError(f"{what} is not a JSON object")
        body = self.verify(document, what)
        try:
            return model_type.model_validate(body)
        except ValidationError as exc:
            raise IntegrityError(
                f"{what} is not a valid {model_type.__name__}: {exc.errors()[0]['msg']}"
            ) from None


def parse_keyring(text: str, source: str) -> Keyring:
    """The keys of a key file's text (``source`` names it in errors)."""
    keys: list[tuple[str, bytes]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key_id, sep, secret = line.partition(":")
        if not sep or not _KEY_ID.match(key_id.strip()):
            raise ConfigurationError(
                f"{source} line {number}: expected KEY_ID:SECRET (key id: letters, digits, "
                "'.', '_' or '-')"
            )
        value = secret.strip().encode()
        if len(value) < MIN_SECRET_BYTES:
            raise ConfigurationError(
                f"{source} line {number}: key {key_id.strip()!r} is shorter than "
                f"{MIN_SECRET_BYTES} bytes (use 'openssl rand -hex 32')"
            )
        keys.append((key_id.strip(), value))
    if not keys:
        raise ConfigurationError(f"{source} holds no KEY_ID:SECRET line")
    return Keyring(tuple(keys))


_cache: dict[tuple[str, int, int], Keyring] = {}
_cache_lock = threading.Lock()


def keyring(settings: Settings) -> Keyring:
    """The keyring of ``SENTINEL_SIGNING_KEY_FILE`` (read again when the file changes)."""
    path = settings.signing_key_file
    if path is None:
        raise ConfigurationError(
            "SENTINEL_SIGNING_KEY_FILE is not set: registry metadata, alias history, catalog "
            "records and checkpoints are signed, so every worker needs the key file "
            "(one KEY_ID:SECRET line, e.g. 'k1:' + 'openssl rand -hex 32')"
        )
    try:
        stat = path.stat()
        marker = (str(path), stat.st_mtime_ns, stat.st_size)
        with _cache_lock:
            if marker not in _cache:
                _cache[marker] = parse_keyring(path.read_text(), str(path))
            return _cache[marker]
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read SENTINEL_SIGNING_KEY_FILE {path}: {exc.strerror}"
        ) from None


def ensure_key_file(path: Path, key_id: str = "dev") -> Path:
    """Create a key file with one fresh key at ``path`` unless it exists (development stacks
    and tests: never needed by hand). Owner-only permissions."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("# generated signing key (SENTINEL_SIGNING_KEY_FILE)\n")
        handle.write(f"{key_id}:{secrets.token_hex(32)}\n")
    try:
        os.link(tmp, path)  # atomic and never replaces: a concurrent creator's key wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path


# ---------------------------------------------------------------------- checkpoint sidecars
SIDECAR_SUFFIX = ".sig.json"


def sidecar_key(key: str) -> str:
    """Where the signed sidecar of the object at ``key`` lives (beside it)."""
    return f"{key}{SIDECAR_SUFFIX}"


def sidecar_bytes(keys: Keyring, key: str, sha256: str) -> bytes:
    """A signed statement that the object at ``key`` has the bytes hashing to ``sha256``."""
    return json.dumps(keys.sign({"key": key, "sha256": sha256}), sort_keys=True).encode()


def vouched_sha256(keys: Keyring, data: bytes, key: str, what: str) -> str:
    """The digest a signed sidecar (``data``) vouches for at ``key``; IntegrityError naming
    ``what`` when it is unsigned, forged, or speaks of another object."""
    try:
        document = json.loads(data)
    except ValueError:
        raise IntegrityError(f"{what} is not JSON") from None
    if not isinstance(document, dict):
        raise IntegrityError(f"{what} is not a JSON object")
    body = keys.verify(document, what)
    sha256 = body.get("sha256")
    if body.get("key") != key or not isinstance(sha256, str):
        raise IntegrityError(f"{what} vouches for {body.get('key')!r}, not {key!r}")
    return sha256
