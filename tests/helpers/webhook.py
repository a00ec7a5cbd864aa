"""A real HTTP(S) receiver on loopback for the webhook: what the workers actually POST.

``WebhookReceiver(tls=make_test_ca(...))`` serves HTTPS with a test CA's certificate;
``redirect_to`` answers every POST with a 307 there; ``fail_first=n`` answers the first n
POSTs with 503 (a receiver that is down for a while).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import SecretStr

from tests.helpers.tls import LocalCA


@dataclass(frozen=True)
class Delivery:
    """One POST as received: its headers (lower-case names) and raw body."""

    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered

    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


class WebhookReceiver:
    """``with WebhookReceiver() as hook:`` serves ``hook.url``; ``hook.received`` holds every
    JSON body accepted (2xx), parsed, in arrival order; ``hook.deliveries`` every POST."""

    def __init__(
        self, *, tls: LocalCA | None = None, redirect_to: str | None = None, fail_first: int = 0
    ) -> None:
        self.received: list[dict[str, Any]] = []
        self.deliveries: list[Delivery] = []
        self.arrived = threading.Event()
        receiver = self
        failures = [fail_first]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                body = self.rfile.read(length)
                status = 204
                if redirect_to is not None:
                    status = 307
                elif failures[0] > 0:
                    failures[0] -= 1
                    status = 503
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.deliveries.append(Delivery(headers, body, status))
                if status == 204:
                    receiver.received.append(json.loads(body))
                self.send_response(status)
                if redirect_to is not None:
                    self.send_header("Location", redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.arrived.set()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.scheme = "http"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.cert, tls.key)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host = "localhost" if self.scheme == "https" else "127.0.0.1"
        return f"{self.scheme}://{host}:{self._server.server_address[1]}/hook"

    def payloads(self, workflow_id: str) -> list[dict[str, Any]]:
        """What was received about one run."""
        return [body for body in self.received if body.get("workflow_id") == workflow_id]

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()


SIGNING_KEY = b"test-webhook-signing-key-0123456789abcdef"


def webhook_config(folder: Path, url: str, ca: LocalCA | None = None) -> dict[str, Any]:
    """Settings fields for a webhook at ``url``: its signing key written under ``folder``
    (``SIGNING_KEY``), and the CA bundle that signed an HTTPS receiver's certificate."""
    folder.mkdir(parents=True, exist_ok=True)
    key_file = folder / "webhook-signing-key"
    key_file.write_bytes(SIGNING_KEY + b"\n")
    return {
        "webhook_url": SecretStr(url),
        "webhook_secret_file": key_file,
        "webhook_ca_file": ca.ca if ca else None,
    }


def signature_ok(delivery: Delivery, key: bytes = SIGNING_KEY) -> bool:
    """The receiver's check of docs/security.md ("Webhooks"), line for line."""
    delivery_id = delivery.headers["sentinel-delivery"]
    timestamp = delivery.headers["sentinel-timestamp"]
    signed = f"{delivery_id}.{timestamp}.".encode() + delivery.body
    expected = "v1=" + hmac.new(key, signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, delivery.headers["sentinel-signature"])
