"""A real MLflow tracking server for the embedded stack and the tests (``mlflow server``).

Runs and the model registry live in a SQLite file under the state directory (they survive a
restart of the stack); artifacts go through the server (``--serve-artifacts``) into a bucket
of the stack's S3 server, so workers need no credentials for them. Needs the ``mlflow``
package (the dev extra); workers only need the client (``mlflow-skinny``).
"""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from workers.dev.stack import ServiceError, _Process, wait_for_port

ARTIFACTS_BUCKET = "sentinel-mlflow"
"""Bucket of the stack's S3 server that holds MLflow's artifacts."""


class MlflowServer(_Process):
    """``mlflow server`` on loopback: SQLite backend, artifacts proxied into S3."""

    name = "MLflow server"

    def __init__(
        self,
        state_dir: Path,
        *,
        port: int = 5000,
        s3_endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str = ARTIFACTS_BUCKET,
    ) -> None:
        super().__init__()
        self.state_dir = state_dir
        self.port = port
        self.s3_endpoint = s3_endpoint
        self.access_key = access_key
        self.secret_key = secret_key
        self.bucket = bucket
        self.db_file = state_dir / "mlflow.db"
        self.log_path = state_dir / "mlflow.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> None:
        """Start and wait until ``/health`` answers (the first start migrates the database)."""
        binary = Path(sys.executable).parent / "mlflow"
        if not binary.exists():
            raise ServiceError(
                "the 'mlflow' command was not found: install the dev extra "
                "(pip install 'sentinel-training[dev]') or run 'make demo'"
            )
        self._check_free(self.port)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        args = [
            str(binary), "server",
            "--backend-store-uri", f"sqlite:///{self.db_file.resolve()}",
            "--artifacts-destination", f"s3://{self.bucket}/",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
        ]  # fmt: skip
        env = {
            "MLFLOW_S3_ENDPOINT_URL": f"http://{self.s3_endpoint}",
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            # MLflow 3's job runner (GenAI evaluation jobs): eight processes we never use.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        started = time.monotonic()
        self._spawn(args, env=env)
        assert self.proc is not None
        wait_for_port(self.port, timeout, self.proc, self.name)
        self._wait_healthy(timeout - (time.monotonic() - started))

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + max(timeout, 1.0)
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServiceError(f"{self.name} exited during start-up (see {self.log_path})")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        raise ServiceError(f"{self.name} did not answer /health within {timeout:.0f}s")
