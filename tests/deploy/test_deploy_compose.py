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
POLICIES = (COMPOSE_DIR.parent / "minio" / "policies").resolve()
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
    # compose secrets read their variable directly (`environment:`), not by interpolation
    sourced = {s["environment"] for s in COMPOSE["secrets"].values() if "environment" in s}
    unused = compose_only - used - sourced
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
        for entry in service["secrets"]:
            secret = entry["source"] if isinstance(entry, dict) else entry
            assert secret in COMPOSE["secrets"], f"{name}: unknown secret {secret}"
            assert (
                "environment" in COMPOSE["secrets"][secret] or "file" in COMPOSE["secrets"][secret]
            )
        mounted = {f"/run/secrets/{_target(s)}" for s in service["secrets"]}
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


def _target(entry: str | dict[str, str]) -> str:
    """The file name under /run/secrets of a service's secret (short or long syntax)."""
    return entry if isinstance(entry, str) else entry.get("target", entry["source"])


def _run_minio_init(
    tmp_path: Path, env: dict[str, str], secret: str, gpu_secret: str = "a-real-gpu-secret"
) -> subprocess.CompletedProcess:
    """The minio-init script, run by /bin/sh against a fake `mc` that logs its arguments,
    with the real policy templates of deploy/minio/policies."""
    script = SERVICES["minio-init"]["command"][0].replace("$$", "$")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "mc").write_text('#!/bin/sh\necho "$@" >> "$MC_LOG"\n')
    (bin_dir / "mc").chmod(0o755)
    secrets = tmp_path / "secrets"
    secrets.mkdir(exist_ok=True)
    for name, value in {
        "s3_access_key": "sentinel-cpu",
        "s3_secret_key": secret,
        "s3_gpu_access_key": "sentinel-gpu",
        "s3_gpu_secret_key": gpu_secret,
    }.items():
        (secrets / name).write_text(value)
    (volume,) = SERVICES["minio-init"]["volumes"]
    source, target, _ = volume.split(":")
    assert (COMPOSE_DIR / source).resolve() == POLICIES
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    script = script.replace(f"{target}/", f"{POLICIES}/").replace("/tmp/", f"{out}/")
    script = script.replace("/run/secrets", str(secrets))
    full_env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "MC_LOG": str(tmp_path / "mc.log"),
        **env,
    }
    return subprocess.run(
        ["/bin/sh", "-ec", script], env=full_env, capture_output=True, text=True, timeout=30
    )


def _granted(policy: dict[str, Any], bucket: str) -> set[str]:
    """Actions a policy allows on objects of ``bucket`` (Deny statements subtracted)."""
    allowed: set[str] = set()
    denied: set[str] = set()
    for statement in policy["Statement"]:
        if f"arn:aws:s3:::{bucket}/*" in statement["Resource"]:
            (allowed if statement["Effect"] == "Allow" else denied).update(statement["Action"])
    return allowed - denied


def test_minio_init_creates_versioned_buckets_and_two_scoped_users(tmp_path: Path):
    example = {**EXAMPLE_ENV, "MINIO_ROOT_PASSWORD": "not-a-placeholder"}
    env = {
        k: interpolate(str(v), example) for k, v in SERVICES["minio-init"]["environment"].items()
    }
    env["SENTINEL_MODELS_BUCKET"] = "acme-models"  # the policies follow the bucket names of .env
    result = _run_minio_init(tmp_path, env, secret="a-real-secret-key")
    assert result.returncode == 0, result.stderr
    log = (tmp_path / "mc.log").read_text()
    buckets = [env[f"SENTINEL_{b}_BUCKET"] for b in ("DATA", "RUNS", "MODELS")]
    for bucket in buckets:
        assert f"mb --ignore-existing local/{bucket}" in log
    assert "version enable local/acme-models" in log
    cpu = json.loads((tmp_path / "out" / "sentinel-cpu.json").read_text())
    gpu = json.loads((tmp_path / "out" / "sentinel-gpu.json").read_text())
    for policy in (cpu, gpu):
        resources = {r for st in policy["Statement"] for r in st["Resource"]}
        assert {r.split(":::")[1].split("/")[0] for r in resources} == set(buckets)
        assert "s3:*" not in {a for st in policy["Statement"] for a in st["Action"]}
    assert {"s3:PutObject", "s3:DeleteObject"} <= _granted(cpu, "acme-models")
    assert _granted(gpu, "acme-models") == {"s3:GetObject"}, "GPU workers write no model"
    assert "s3:PutObject" in _granted(gpu, env["SENTINEL_RUNS_BUCKET"])
    for policy in (cpu, gpu):
        assert not {"s3:DeleteObjectVersion", "s3:PutBucketVersioning"} & _granted(
            policy, "acme-models"
        ), "no worker may purge the models bucket's history"
    assert "admin user add local sentinel-cpu a-real-secret-key" in log
    assert "admin policy attach local sentinel-cpu --user sentinel-cpu" in log
    assert "admin user add local sentinel-gpu a-real-gpu-secret" in log
    assert "admin policy attach local sentinel-gpu --user sentinel-gpu" in log


@pytest.mark.parametrize("which", ["root", "s3", "gpu"])
def test_minio_init_refuses_the_env_example_placeholders(tmp_path: Path, which: str):
    env = {
        k: interpolate(str(v), EXAMPLE_ENV)
        for k, v in SERVICES["minio-init"]["environment"].items()
    }
    if which != "root":
        env["MINIO_ROOT_PASSWORD"] = "not-a-placeholder"
    secret = EXAMPLE_ENV["SENTINEL_S3_SECRET_KEY"] if which == "s3" else "a-real-secret-key"
    gpu_secret = EXAMPLE_ENV["GPU_S3_SECRET_KEY"] if which == "gpu" else "a-real-gpu-secret"
    result = _run_minio_init(tmp_path, env, secret=secret, gpu_secret=gpu_secret)
    assert result.returncode != 0 and "change-me" in result.stderr
    assert not (tmp_path / "mc.log").exists(), "nothing may be created with public credentials"


def test_gpu_worker_gets_its_own_identity_and_no_webhook():
    cpu, gpu = SERVICES["worker-cpu"], SERVICES["worker-gpu"]
    sources = {s["source"] if isinstance(s, dict) else s for s in gpu["secrets"]}
    assert sources == {"s3_gpu_access_key", "s3_gpu_secret_key", "signing_keys"}
    assert {_target(s) for s in gpu["secrets"]} == {
        "s3_access_key",
        "s3_secret_key",
        "signing_keys",
    }
    assert "signing_keys" in cpu["secrets"]  # every worker signs and verifies
    assert {"webhook_url", "webhook_signing_key"} <= set(cpu["secrets"])
    assert cpu["environment"]["SENTINEL_WEBHOOK_URL_FILE"] == "/run/secrets/webhook_url"
    assert gpu["environment"]["SENTINEL_WEBHOOK_URL_FILE"] is None


def test_env_file_is_git_ignored():
    ignored = (COMPOSE_DIR / ".gitignore").read_text().split()
    assert ".env" in ignored
