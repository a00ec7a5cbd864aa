"""The compose stack (deploy/compose): compose-spec schema, services, and the bucket bootstrap."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from workers.wiring import parse_queues

from ._support import (
    APP_LABEL,
    COMPOSE_DIR,
    COMPOSE_FILE,
    HEARTBEAT_TIMEOUT_BUDGET_S,
    IMAGE_NAME,
    SHUTDOWN_MARGIN_S,
    env_example,
    interpolate,
    interpolations,
    tool,
)

RAW = COMPOSE_FILE.read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(RAW)
SERVICES: dict[str, Any] = COMPOSE["services"]
SENTINEL_SERVICES = ("worker-cpu", "worker-gpu", "controller-apply")
WORKERS = {"worker-cpu": "cpu", "worker-gpu": "gpu"}
EXAMPLE_ENV = {e.name: e.value for e in env_example().values() if e.active}


def _check_schema(path: Path) -> None:
    tool("check-jsonschema")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, (
        f"{path} is not a valid compose file:\n{result.stdout}{result.stderr}"
    )


def test_compose_file_matches_the_compose_spec():
    _check_schema(COMPOSE_FILE)


def test_compose_file_is_valid_once_interpolated_with_env_example(tmp_path: Path):
    """What `docker compose config` would see after `cp .env.example .env`."""
    resolved = tmp_path / "compose.yaml"
    resolved.write_text(interpolate(RAW, EXAMPLE_ENV))
    _check_schema(resolved)
    loaded = yaml.safe_load(resolved.read_text())
    for service in loaded["services"].values():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{port}: bind host ports to loopback only"


def test_every_compose_variable_is_documented_in_env_example():
    entries = env_example()
    used = {name for name, _, _ in interpolations(RAW)}
    used |= {s["environment"] for s in COMPOSE["secrets"].values()}  # secrets from .env
    missing = used - set(entries)
    assert not missing, f"compose.yaml uses {sorted(missing)}, undocumented in .env.example"
    compose_only = {name for name in entries if not name.startswith("SENTINEL_")}
    unused = compose_only - used
    assert not unused, f".env.example documents {sorted(unused)}, unused by compose.yaml"
    for name, op, _ in interpolations(RAW):
        if op in (":?", "?"):
            assert entries[name].active, f"{name} is required: .env.example must set it"


def test_env_example_values_equal_compose_defaults():
    """`cp .env.example .env` must not change anything but the placeholders."""
    entries = env_example()
    for name, op, default in interpolations(RAW):
        if op == ":-":
            assert entries[name].active, f"{name} has a compose default: set it in .env.example"
            assert entries[name].value == default, (
                f"{name}: .env.example says {entries[name].value!r}, compose.yaml {default!r}"
            )


def test_stack_has_its_services():
    expected = {"postgres", "temporal", "temporal-ui", "minio", "minio-init"} | set(
        SENTINEL_SERVICES
    )
    assert set(SERVICES) == expected
    assert SERVICES["temporal"]["image"].startswith("temporalio/auto-setup:")
    assert SERVICES["temporal"]["environment"]["DB"] == "postgres12"
    assert SERVICES["temporal-ui"]["image"].startswith("temporalio/ui:")
    for name, service in SERVICES.items():
        assert not service["image"].endswith(":latest") and ":" in service["image"], name
    assert SERVICES["controller-apply"]["command"] == ["controller", "apply"]
    assert SERVICES["controller-apply"]["entrypoint"][-1] == "sentinel"


def test_sentinel_services_use_the_image_hardened_and_with_secrets_as_files():
    for name in SENTINEL_SERVICES:
        service = SERVICES[name]
        kind = WORKERS.get(name, "cpu")
        image = interpolate(service["image"], EXAMPLE_ENV)
        repository, _, tag = image.rpartition(":")
        assert repository.rsplit("/", 1)[-1] == IMAGE_NAME and tag.endswith(f"-{kind}"), name
        assert service["build"]["dockerfile"] == f"deploy/docker/Dockerfile.{kind}", name
        assert (COMPOSE_DIR / service["build"]["context"]).resolve() == COMPOSE_DIR.parents[1]
        assert service["labels"][APP_LABEL[0]] == APP_LABEL[1], name
        assert service["read_only"] is True and "/tmp" in service["tmpfs"], name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        env = service["environment"]
        for secret in service["secrets"]:
            assert secret in COMPOSE["secrets"], f"{name}: unknown secret {secret}"
            assert (
                "environment" in COMPOSE["secrets"][secret] or "file" in COMPOSE["secrets"][secret]
            )
        mounted = {f"/run/secrets/{s}" for s in service["secrets"]}
        for key in ("SENTINEL_S3_ACCESS_KEY_FILE", "SENTINEL_S3_SECRET_KEY_FILE"):
            assert env[key] in mounted, f"{name}: {key} points at no mounted secret"
        depends = service["depends_on"]
        assert depends["temporal"]["condition"] == "service_healthy", name
        assert depends["minio-init"]["condition"] == "service_completed_successfully", name


def test_workers_serve_their_queues_and_shut_down_gracefully():
    for name, kind in WORKERS.items():
        service = SERVICES[name]
        env = {k: interpolate(str(v), EXAMPLE_ENV) for k, v in service["environment"].items() if v}
        queues = parse_queues(env["SENTINEL_WORKER_QUEUES"])
        assert kind in queues, f"{name} must serve the {kind} queue"
        grace = int(re.fullmatch(r"(\d+)s", service["stop_grace_period"]).group(1))
        shutdown = float(env["SENTINEL_GRACEFUL_SHUTDOWN_SECONDS"])
        assert grace >= HEARTBEAT_TIMEOUT_BUDGET_S, name
        assert shutdown + SHUTDOWN_MARGIN_S <= grace, f"{name}: SIGKILL before shutdown ends"
        assert service["restart"] == "unless-stopped"
    assert "profiles" not in SERVICES["worker-cpu"], "`docker compose up` must start a worker"
    assert SERVICES["worker-gpu"]["profiles"] == ["gpu"]


def test_gpu_worker_reserves_an_nvidia_gpu():
    devices = SERVICES["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert "deploy" not in SERVICES["worker-cpu"]
    for name in WORKERS:
        assert SERVICES[name]["shm_size"], f"{name}: DataLoader needs more than 64 MB of /dev/shm"


def _run_minio_init(
    tmp_path: Path, env: dict[str, str], secret: str
) -> subprocess.CompletedProcess:
    """The minio-init script, run by /bin/sh against a fake `mc` that logs its arguments."""
    script = SERVICES["minio-init"]["command"][0].replace("$$", "$")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "mc").write_text('#!/bin/sh\necho "$@" >> "$MC_LOG"\n')
    (bin_dir / "mc").chmod(0o755)
    secrets = tmp_path / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "s3_access_key").write_text("sentinel-worker")
    (secrets / "s3_secret_key").write_text(secret)
    policy = "/tmp/sentinel-policy.json"
    assert policy in script
    script = script.replace(policy, str(tmp_path / "sentinel-policy.json"))
    script = script.replace("/run/secrets", str(secrets))
    full_env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "MC_LOG": str(tmp_path / "mc.log"),
        **env,
    }
    return subprocess.run(
        ["/bin/sh", "-ec", script], env=full_env, capture_output=True, text=True, timeout=30
    )


def test_minio_init_creates_buckets_and_a_bucket_scoped_user(tmp_path: Path):
    env = {k: interpolate(str(v), {**EXAMPLE_ENV, "MINIO_ROOT_PASSWORD": "not-a-placeholder"})
           for k, v in SERVICES["minio-init"]["environment"].items()}  # fmt: skip
    result = _run_minio_init(tmp_path, env, secret="a-real-secret-key")
    assert result.returncode == 0, result.stderr
    log = (tmp_path / "mc.log").read_text()
    buckets = [env[f"SENTINEL_{b}_BUCKET"] for b in ("DATA", "RUNS", "MODELS")]
    for bucket in buckets:
        assert f"mb --ignore-existing local/{bucket}" in log
    policy = json.loads((tmp_path / "sentinel-policy.json").read_text())
    (statement,) = policy["Statement"]
    assert sorted(statement["Resource"]) == sorted(
        [f"arn:aws:s3:::{b}" for b in buckets] + [f"arn:aws:s3:::{b}/*" for b in buckets]
    )
    assert "admin user add local sentinel-worker a-real-secret-key" in log
    assert "admin policy attach local sentinel-rw --user sentinel-worker" in log


@pytest.mark.parametrize("which", ["root", "s3"])
def test_minio_init_refuses_the_env_example_placeholders(tmp_path: Path, which: str):
    env = {
        k: interpolate(str(v), EXAMPLE_ENV)
        for k, v in SERVICES["minio-init"]["environment"].items()
    }
    if which == "s3":
        env["MINIO_ROOT_PASSWORD"] = "not-a-placeholder"
    secret = EXAMPLE_ENV["SENTINEL_S3_SECRET_KEY"] if which == "s3" else "a-real-secret-key"
    result = _run_minio_init(tmp_path, env, secret=secret)
    assert result.returncode != 0 and "change-me" in result.stderr
    assert not (tmp_path / "mc.log").exists(), "nothing may be created with public credentials"


def test_env_file_is_git_ignored():
    ignored = (COMPOSE_DIR / ".gitignore").read_text().split()
    assert ".env" in ignored
