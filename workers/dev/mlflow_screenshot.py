"""``python -m workers.dev.mlflow_screenshot``: the demo's runs, seen in a real browser.

Runs ``make demo``'s job on a fresh embedded stack (``python -m workers.dev --demo``), starts
the MLflow server again on the demo's database, checks with the MLflow client that both
versions were tracked (two runs with per-epoch metrics, versions 1 and 2 registered), then
has headless Chromium (driven over its DevTools pipe: it waits, in real time, until the charts
are drawn) render three pages of the MLflow UI to PNG files:

- ``<out>-runs.png``: the experiment's runs compared in chart view (a chart per metric);
- ``<out>-run.png``: the v2 run's model metrics (its per-epoch charts);
- ``<out>-registry.png``: the registered model with its versions and the production alias.

Chromium: Debian's ``chromium`` package (``apt-get install -y chromium``). Artifacts are not
shown (the demo's S3 server is gone by then); runs, metrics and the registry live in MLflow's
SQLite file under ``--state-dir``.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from workers.dev.mlflow_server import MlflowServer
from workers.dev.stack import ServiceError, free_port

MODEL = "demo-shapes"
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
)  # fmt: skip
"""The flags of a quiet, offline, throw-away headless Chromium."""


UI_SETTINGS = {
    # What a person clicks once in a fresh browser: the model-training view (not GenAI), the
    # assistant panel closed, first-visit hints dismissed. MLflow keeps them in localStorage
    # as JSON under "<key>_v<version>".
    "mlflow.workflowType_v1": "machine_learning",
    "mlflow.assistant.panelOpen_v1": False,
    "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": True,
    "mlflow.detectIssues.guidanceShown_v1": True,
    "mlflow.flagForReview.guidanceShown_v1": True,
}


class _SettingsProxy:
    """The MLflow UI through a loopback proxy that puts :data:`UI_SETTINGS` into
    localStorage before the app starts (same origin as the pages, so the app reads them)."""

    def __init__(self, upstream_port: int) -> None:
        script = (
            "<script>for (const [k, v] of Object.entries("
            + json.dumps(UI_SETTINGS)
            + ")) localStorage.setItem(k, JSON.stringify(v));</script>"
        ).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
                upstream.request(
                    "GET", self.path, headers={"Accept": self.headers["Accept"] or "*/*"}
                )
                reply = upstream.getresponse()
                body = reply.read()
                kind = reply.getheader("Content-Type") or ""
                if kind.startswith("text/html"):
                    body = body.replace(b"<head>", b"<head>" + script, 1)
                self.send_response(reply.status)
                self.send_header("Content-Type", kind or "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                upstream = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
                upstream.request(
                    "POST", self.path, body=self.rfile.read(length),
                    headers={"Content-Type": self.headers["Content-Type"] or "application/json"},
                )  # fmt: skip
                reply = upstream.getresponse()
                body = reply.read()
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.getheader("Content-Type") or "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workers.dev.mlflow_screenshot")
    parser.add_argument("--state-dir", type=Path, default=Path(".state-screenshot"))
    parser.add_argument("--out", type=Path, default=Path("docs/images/mlflow-demo"))
    parser.add_argument("--skip-demo", action="store_true", help="use the state dir as it is")
    parser.add_argument(
        "--wait-seconds", type=float, default=60.0, help="most time a page gets to load"
    )
    return parser


def _run_demo(state_dir: Path) -> None:
    ports = [str(free_port()) for _ in range(4)]
    subprocess.run(
        [sys.executable, "-m", "workers.dev", "--demo", "--state-dir", str(state_dir),
         "--temporal-port", ports[0], "--ui-port", ports[1], "--s3-port", ports[2],
         "--mlflow-port", ports[3]],
        check=True,
    )  # fmt: skip


def _check_tracked(url: str) -> tuple[str, str]:
    """(experiment id, v2's run id), after checking that both versions were tracked."""
    from mlflow import MlflowClient

    client = MlflowClient(url)
    experiment = client.get_experiment_by_name(f"sentinel/{MODEL}")
    if experiment is None:
        raise SystemExit(f"no MLflow experiment sentinel/{MODEL}: was the demo tracked?")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    versions = sorted(v.version for v in client.search_model_versions(f"name = '{MODEL}'"))
    epochs = [len(client.get_metric_history(r.info.run_id, "epoch")) for r in runs]
    print(f"MLflow: {len(runs)} runs with {epochs} epochs, registered versions {versions}")
    if len(runs) != 2 or min(epochs) == 0 or versions != ["1", "2"]:
        raise SystemExit("the demo's two versions are not both in MLflow")
    return str(experiment.experiment_id), str(runs[-1].info.run_id)


SCROLL_TO_PER_EPOCH_CHARTS = """(() => {
  const header = [...document.querySelectorAll('*')].find(
    e => e.childElementCount === 0 && e.textContent.trim() === 'metrics');
  if (!header) return false;
  header.scrollIntoView({block: 'start'});
  return true;
})()"""
"""Scroll to the chart section of Ultralytics' validation metrics (``metrics/...``, per epoch)."""
LINE_CHARTS_DRAWN = "document.querySelectorAll('.js-plotly-plot .scatterlayer .trace').length >= 4"


class _Browser:
    """Headless Chromium driven over ``--remote-debugging-pipe`` (the DevTools protocol as
    NUL-separated JSON on fds 3 and 4): real time for the UI's data to load, then a PNG."""

    def __init__(self, width: int, height: int) -> None:
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium is None:
            raise SystemExit("chromium not found: apt-get install -y chromium")
        self._profile = tempfile.TemporaryDirectory(prefix="sentinel-chromium-")
        to_browser, self._commands = os.pipe()
        self._replies, from_browser = os.pipe()
        # The browser reads commands on its fd 3 and writes replies on its fd 4: the shell
        # puts our pipe ends there, then becomes the browser.
        redirect = f'exec "$0" "$@" 3<&{to_browser} 4>&{from_browser}'
        self.proc = subprocess.Popen(
            ["sh", "-c", redirect, chromium, *CHROMIUM_FLAGS,
             f"--user-data-dir={self._profile.name}", f"--window-size={width},{height}",
             "--remote-debugging-pipe", "about:blank"],
            pass_fds=(to_browser, from_browser), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        os.close(to_browser)
        os.close(from_browser)
        self._reader = os.fdopen(self._replies, "rb")
        self._next_id = 0
        self.size = (width, height)

    def call(self, method: str, session: str | None = None, **params: object) -> dict[str, Any]:
        """Send one command; returns its result (events are skipped)."""
        self._next_id += 1
        message: dict[str, object] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        while True:
            reply = json.loads(self._read_message())
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))

    def _read_message(self) -> bytes:
        chunks = []
        while (byte := self._reader.read(1)) not in (b"\0", b""):
            chunks.append(byte)
        return b"".join(chunks)

    def screenshot(self, url: str, out: Path, steps: tuple[str, ...], timeout: float) -> None:
        """Open ``url``; each JavaScript expression of ``steps`` is evaluated until it is true
        (in turn, within ``timeout`` in all); then save a PNG."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        width, height = self.size
        self.call("Emulation.setDeviceMetricsOverride", session, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)  # fmt: skip
        self.call("Page.navigate", session, url=url)
        deadline = time.monotonic() + timeout
        for step in steps:
            while time.monotonic() < deadline:
                result = self.call("Runtime.evaluate", session, expression=step)["result"]
                if result.get("value") is True:
                    break
                time.sleep(0.5)
            else:
                raise SystemExit(f"{url}: still not true after {timeout:.0f}s: {step}")
        time.sleep(2.0)  # the charts' drawing
        data = self.call("Page.captureScreenshot", session, format="png")["data"]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(data))
        self.call("Target.closeTarget", targetId=target)
        print(f"wrote {out} ({url})")

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (OSError, RuntimeError, json.JSONDecodeError):
            self.proc.kill()
        self.proc.wait(30)
        self._profile.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not args.skip_demo:
        shutil.rmtree(args.state_dir, ignore_errors=True)
        _run_demo(args.state_dir)
    # Artifacts are not needed for the pages shot here: any S3 endpoint will do.
    server = MlflowServer(
        args.state_dir / "mlflow", port=free_port(), s3_endpoint="127.0.0.1:9",
        access_key="unused", secret_key="unused",
    )  # fmt: skip
    proxy: _SettingsProxy | None = None
    try:
        server.start()
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        experiment, run = _check_tracked(server.url)
        proxy = _SettingsProxy(server.port)
        per_epoch = (SCROLL_TO_PER_EPOCH_CHARTS, LINE_CHARTS_DRAWN)
        pages = {
            "runs": (
                f"{proxy.url}/#/experiments/{experiment}/runs?compareRunsMode=CHART",
                per_epoch,
            ),
            "run": (f"{proxy.url}/#/experiments/{experiment}/runs/{run}/model-metrics", per_epoch),
            "registry": (
                f"{proxy.url}/#/models/{MODEL}",
                ("document.body.innerText.includes('Version 2')",),
            ),
        }
        browser = _Browser(1600, 1100)
        try:
            for name, (url, ready) in pages.items():
                out = args.out.with_name(f"{args.out.name}-{name}.png")
                browser.screenshot(url, out, ready, args.wait_seconds)
        finally:
            browser.close()
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if proxy is not None:
            proxy.close()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
