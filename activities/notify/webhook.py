"""Signed webhook deliveries: where they may go, how they are signed, one POST.

The URL is a secret (it often carries a token): nothing here puts it, or its host, into a
log line, an error or a result; problems name the setting instead.

Signature scheme (``docs/security.md``, "Webhooks", shows a receiver's five lines):
``Sentinel-Signature: v1=<hex HMAC-SHA256(key, f"{id}.{timestamp}.".encode() + body)>`` with
``id`` = ``Sentinel-Delivery`` and ``timestamp`` = ``Sentinel-Timestamp`` (Unix seconds).
A delivery keeps its id across retries, so receivers drop duplicates by id.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr

from activities.infra.errors import ConfigurationError, SentinelError
from activities.infra.settings import Settings

DELIVERY_HEADER = "Sentinel-Delivery"
TIMESTAMP_HEADER = "Sentinel-Timestamp"
SIGNATURE_HEADER = "Sentinel-Signature"
EVENT_HEADER = "Sentinel-Event"
SIGNATURE_VERSION = "v1"
MIN_SECRET_BYTES = 16


class WebhookDeliveryError(SentinelError):
    """The receiver did not accept a delivery (unreachable, 5xx): another attempt, with the
    same delivery id, may succeed. The message never names the URL."""


class WebhookRefusedError(WebhookDeliveryError):
    """The receiver answered in a way retrying cannot fix (a redirect, a 4xx)."""

    retryable = False


def sign(secret: bytes, delivery_id: str, timestamp: int, body: bytes) -> str:
    """The ``Sentinel-Signature`` value of a delivery."""
    message = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret, message, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _text(value: SecretStr | str | None) -> str | None:
    # model_copy(update=...) skips validation: a plain str may stand where a SecretStr should
    return value.get_secret_value() if isinstance(value, SecretStr) else value


@dataclass(frozen=True)
class WebhookTarget:
    """A checked webhook: HTTPS (or HTTP to loopback), its signing key, its CA bundle."""

    scheme: str
    host: str
    port: int
    path: str  # with the query: part of the secret
    secret: bytes = field(repr=False)
    ca_file: Path | None = None

    def __repr__(self) -> str:  # the dataclass repr would print the path (a token)
        return f"WebhookTarget(scheme={self.scheme!r})"

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self.scheme == "http":
            return http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        context = ssl.create_default_context(
            cafile=str(self.ca_file) if self.ca_file is not None else None
        )
        return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=context)

    def post(
        self, event: str, delivery_id: str, timestamp: int, body: bytes, timeout: float
    ) -> int:
        """POST one signed delivery; the HTTP status of a 2xx answer.

        Redirects are never followed (http.client does not follow them): a 3xx is refused, as
        is a 4xx; a 5xx or a network error raises :class:`WebhookDeliveryError` (retryable).
        """
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "sentinel-training-webhook",
            EVENT_HEADER: event,
            DELIVERY_HEADER: delivery_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self.secret, delivery_id, timestamp, body),
        }
        connection = self._connection(timeout)
        try:
            connection.request("POST", self.path, body=body, headers=headers)
            status = connection.getresponse().status
        except (OSError, http.client.HTTPException) as exc:
            raise WebhookDeliveryError(f"webhook delivery failed: {self._describe(exc)}") from None
        finally:
            connection.close()
        if 300 <= status < 400:
            raise WebhookRefusedError(
                f"webhook answered HTTP {status} (a redirect): redirects are not followed; "
                "set SENTINEL_WEBHOOK_URL to the final address"
            )
        if 400 <= status < 500:
            raise WebhookRefusedError(f"webhook answered HTTP {status}: delivery refused")
        if status >= 500:
            raise WebhookDeliveryError(f"webhook answered HTTP {status}")
        return status

    def _describe(self, exc: BaseException) -> str:
        """What went wrong, without the URL (the host is replaced too)."""
        if isinstance(exc, ssl.SSLCertVerificationError):
            trust = "see SENTINEL_WEBHOOK_CA_FILE"
            text = f"TLS certificate not trusted ({exc.verify_message}); {trust}"
        elif isinstance(exc, OSError) and exc.strerror:
            text = exc.strerror
        else:
            text = type(exc).__name__
        return text.replace(self.host, "<webhook host>")


def target_from_settings(settings: Settings) -> WebhookTarget | None:
    """The configured webhook, checked, or None when none is configured.

    :class:`ConfigurationError` (naming the setting, never the URL) for: a scheme other than
    ``https`` (``http`` only to a loopback host, for development), no host, user info in the
    URL, or a missing/short signing key.
    """
    url = _text(settings.webhook_url)
    if not url:
        return None
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:  # its message may quote the URL: name the setting only
        raise ConfigurationError("SENTINEL_WEBHOOK_URL is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        shown = f"scheme {scheme!r}" if scheme else "no scheme"
        raise ConfigurationError(
            f"SENTINEL_WEBHOOK_URL has {shown}: use https:// (http:// only to a loopback host)"
        )
    if not host:
        raise ConfigurationError("SENTINEL_WEBHOOK_URL names no host")
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError("SENTINEL_WEBHOOK_URL must not carry user:password@")
    if scheme == "http" and not _is_loopback(host):
        raise ConfigurationError(
            "SENTINEL_WEBHOOK_URL is plain http:// to a non-loopback host: use https://"
        )
    secret = _signing_key(settings.webhook_secret_file)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default_port = 443 if scheme == "https" else 80
    return WebhookTarget(scheme, host, port or default_port, path, secret, settings.webhook_ca_file)


def _signing_key(path: Path | None) -> bytes:
    if path is None:
        raise ConfigurationError(
            "SENTINEL_WEBHOOK_URL is set but SENTINEL_WEBHOOK_SECRET_FILE is not: every "
            "delivery is signed; share that key with the receiver"
        )
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigurationError(
            f"cannot read SENTINEL_WEBHOOK_SECRET_FILE {path}: {exc.strerror}"
        ) from None
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"SENTINEL_WEBHOOK_SECRET_FILE {path} holds {len(key)} bytes: use at least "
            f"{MIN_SECRET_BYTES} random bytes (e.g. `openssl rand -hex 32`)"
        )
    return key
