"""A TCP port that records who knocks: each accepted connection's time, then hangs up.

Used to prove what a client does with an address without timing the client's process: "no
connection attempt at all" (bad input named first), or "gave up after its own timeout" (the
span between the first and the last attempt), independent of interpreter start-up.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Knocks:
    """Monotonic times of the accepted connections, and the address they came to."""

    address: str
    times: list[float] = field(default_factory=list)

    @property
    def span(self) -> float:
        """Seconds between the first and the last connection (0 with fewer than two)."""
        return self.times[-1] - self.times[0] if len(self.times) > 1 else 0.0


@contextmanager
def recording_listener() -> Iterator[Knocks]:
    """A loopback port that accepts and closes every connection, recording when."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    server.settimeout(0.2)
    knocks = Knocks(f"127.0.0.1:{server.getsockname()[1]}")
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            knocks.times.append(time.monotonic())
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield knocks
    finally:
        stop.set()
        thread.join(5)
        server.close()
