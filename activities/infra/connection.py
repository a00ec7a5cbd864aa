"""Connecting to Temporal from settings, with one-line errors a person can act on."""

from __future__ import annotations

import asyncio
import os
import sys

from temporalio.client import Client, TLSConfig
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime

from activities.infra.settings import Settings


class TemporalUnavailableError(RuntimeError):
    """Temporal could not be reached; the message says where and what to check."""


def _tls_config(settings: Settings) -> TLSConfig | bool:
    if not settings.temporal_tls:
        return False
    if settings.temporal_tls_cert_file and settings.temporal_tls_key_file:
        return TLSConfig(
            client_cert=settings.temporal_tls_cert_file.read_bytes(),
            client_private_key=settings.temporal_tls_key_file.read_bytes(),
        )
    return True


async def connect(
    settings: Settings, *, timeout: float | None = None, runtime: Runtime | None = None
) -> Client:
    """A client for the configured Temporal, using the pydantic data converter.

    Retries for ``timeout`` seconds (default: ``temporal_connect_timeout_seconds``; a dev
    server may still be starting), then raises :class:`TemporalUnavailableError` naming the
    address and the setting to fix. ``runtime``: the SDK runtime to use (workers pass one
    that records metrics); default the SDK's process-wide one.
    """
    wait = settings.temporal_connect_timeout_seconds if timeout is None else timeout
    deadline = asyncio.get_running_loop().time() + wait
    last: Exception | None = None
    while True:
        try:
            return await Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                data_converter=pydantic_data_converter,
                tls=_tls_config(settings),
                api_key=settings.temporal_api_key(),
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
