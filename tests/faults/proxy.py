"""A pausable TCP proxy: an S3 outage without losing moto's in-memory data.

Workers talk to the proxy; :meth:`FaultyProxy.outage` drops every open connection and
answers new ones by closing them at once, for a while. :meth:`FaultyProxy.arm` starts an
outage when a client sends a chunk containing a marker (e.g. ``b"PUT /sentinel-models/"``):
the chunk is forwarded, then, after ``delay`` seconds, the connection is cut whether or not
the answer came back, so the request may or may not have happened.
"""

from __future__ import annotations

import asyncio
import threading
import time


class FaultyProxy:
    """Forward ``127.0.0.1:port`` to ``upstream``; run on its own thread and event loop."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.outages = 0
        self.outage_times: list[float] = []
        """Wall-clock time (``time.time()``) each outage began, to place it in a history."""
        self.dropped = 0
        self._until = 0.0
        self._trigger: tuple[bytes, float, float] | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="faulty-proxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FaultyProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        async def _close() -> None:
            if self._server:
                self._server.close()
            for writer in list(self._writers):
                writer.close()

        asyncio.run_coroutine_threadsafe(_close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    # ------------------------------------------------------------------ faults
    @property
    def down(self) -> bool:
        return time.monotonic() < self._until

    def outage(self, seconds: float) -> None:
        """Cut every connection now and refuse new ones for ``seconds``."""
        self._loop.call_soon_threadsafe(self._begin_outage, seconds)

    def arm(self, marker: bytes, seconds: float, delay: float = 0.0) -> None:
        """Begin an outage of ``seconds`` when a client sends ``marker`` (once)."""
        self._trigger = (marker, seconds, delay)

    @property
    def armed(self) -> bool:
        return self._trigger is not None

    def _begin_outage(self, seconds: float) -> None:
        self.outages += 1
        self.outage_times.append(time.time())
        self._until = max(self._until, time.monotonic() + seconds)
        for writer in list(self._writers):
            writer.transport.abort()

    # ------------------------------------------------------------------ plumbing
    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def _start() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()

        self._loop.run_until_complete(_start())
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            self.dropped += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        try:
            await asyncio.gather(
                self._pipe(reader, up_writer, inspect=True), self._pipe(up_reader, writer)
            )
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, inspect: bool = False
    ) -> None:
        try:
            while chunk := await reader.read(65536):
                if self.down:
                    break
                writer.write(chunk)
                await writer.drain()
                trigger = self._trigger
                if inspect and trigger and trigger[0] in chunk:
                    self._trigger = None
                    self._loop.call_later(trigger[2], self._begin_outage, trigger[1])
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()
