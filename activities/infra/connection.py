"""Connecting to Temporal from settings, with one-line errors a person can act on."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from temporalio.client import Client, TLSConfig
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime

from activities.infra.errors import ConfigurationError
from activities.infra.settings import Settings


class TemporalUnavailableError(RuntimeError):
    """Temporal could not be reached; the message says where and what to check."""


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read {what} {path}: {exc.strerror}") from None


def tls_config(settings: Settings) -> TLSConfig | bool:
    """The TLS of the Temporal connection, or a one-line :class:`ConfigurationError`.

    Never a silent downgrade: credentials (an API key, a client certificate) or TLS details
    (CA bundle, server name) without ``SENTINEL_TEMPORAL_TLS`` are refused, because the key
    would travel in clear text; a certificate without its key (or a key without its
    certificate) is refused instead of falling back to server-only TLS.
    """
    tls_only = {
        "SENTINEL_TEMPORAL_API_KEY_FILE": settings.temporal_api_key_file,
        "SENTINEL_TEMPORAL_TLS_CERT_FILE": settings.temporal_tls_cert_file,
        "SENTINEL_TEMPORAL_TLS_KEY_FILE": settings.temporal_tls_key_file,
        "SENTINEL_TEMPORAL_TLS_CA_FILE": settings.temporal_tls_ca_file,
        "SENTINEL_TEMPORAL_TLS_SERVER_NAME": settings.temporal_tls_server_name,
    }
    if not settings.temporal_tls:
        needing = [name for name, value in tls_only.items() if value]
        if needing:
            raise ConfigurationError(
                f"{needing[0]} is set but SENTINEL_TEMPORAL_TLS is false: credentials would "
                "cross the network in clear text; set SENTINEL_TEMPORAL_TLS=true"
            )
        return False
    cert, key = settings.temporal_tls_cert_file, settings.temporal_tls_key_file
    if (cert is None) != (key is None):
        have, lacking = (
            ("SENTINEL_TEMPORAL_TLS_CERT_FILE", "SENTINEL_TEMPORAL_TLS_KEY_FILE")
            if key is None
            else ("SENTINEL_TEMPORAL_TLS_KEY_FILE", "SENTINEL_TEMPORAL_TLS_CERT_FILE")
        )
        raise ConfigurationError(
            f"{have} is set without {lacking}: a client certificate needs its key "
            "(set both for mTLS, or neither for server-only TLS)"
        )
    ca = settings.temporal_tls_ca_file
    if cert is None and ca is None and settings.temporal_tls_server_name is None:
        return True
    return TLSConfig(
        server_root_ca_cert=_read(ca, "SENTINEL_TEMPORAL_TLS_CA_FILE") if ca else None,
        domain=settings.temporal_tls_server_name,
        client_cert=_read(cert, "SENTINEL_TEMPORAL_TLS_CERT_FILE") if cert else None,
        client_private_key=_read(key, "SENTINEL_TEMPORAL_TLS_KEY_FILE") if key else None,
    )


async def connect(
    settings: Settings, *, timeout: float | None = None, runtime: Runtime | None = None
) -> Client:
    """A client for the configured Temporal, using the pydantic data converter.

    Retries for ``timeout`` seconds (default: ``temporal_connect_timeout_seconds``; a dev
    server may still be starting), then raises :class:`TemporalUnavailableError` naming the
    address and the setting to fix. A TLS misconfiguration raises
    :class:`~activities.infra.errors.ConfigurationError` at once (see :func:`tls_config`).
    ``runtime``: the SDK runtime to use (workers pass one that records metrics); default the
    SDK's process-wide one.
    """
    tls = tls_config(settings)  # a misconfiguration fails now, before any connection attempt
    api_key = settings.temporal_api_key()
    wait = settings.temporal_connect_timeout_seconds if timeout is None else timeout
    deadline = asyncio.get_running_loop().time() + wait
    last: Exception | None = None
    while True:
        try:
            return await Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                data_converter=pydantic_data_converter,
                tls=tls,
                api_key=api_key,
                runtime=runtime,
            )
        except Exception as exc:  # the SDK raises RuntimeError with a long gRPC text
            last = exc
        if asyncio.get_running_loop().time() >= deadline:
            first_line = str(last).splitlines()[0] if str(last) else type(last).__name__
            raise TemporalUnavailableError(
                f"cannot reach Temporal at {settings.temporal_address} "
                f"(namespace {settings.temporal_namespace!r}): {first_line[:160]}. Is the server "
                "running? Set SENTINEL_TEMPORAL_ADDRESS, or start the embedded stack with "
                "'python -m workers.dev'."
            ) from last
        await asyncio.sleep(0.5)


def exit_process(code: int) -> None:
    """Flush and leave now, skipping interpreter finalization.

    The SDK's native runtime keeps threads that can crash Python's finalization (SIGSEGV or
    SIGABRT after our output), notably after a failed connect; entry points exit through here
    so their exit code is the one they chose.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
