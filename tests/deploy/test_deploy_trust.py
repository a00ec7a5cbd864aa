"""Least privilege and transport in deploy/: two S3 identities (the GPU one never writes the
models bucket), a versioned models bucket, and TLS to Temporal that the workers accept in
every rendered target (on in prod). Rendered by the real ``kubectl kustomize``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from activities.infra.connection import tls_config
from activities.infra.settings import Settings

from ._k8s import by_kind, pod_env, rendered
from ._support import DEPLOY, K8S

POLICIES = DEPLOY / "minio" / "policies"
MINIO_VALUES = yaml.safe_load((K8S / "helm" / "minio-values.yaml").read_text())
RENDERED = rendered()
WRITES = {"s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:*"}


def _policy(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((POLICIES / f"{name}.json").read_text())
    return loaded


def _allowed(statements: list[dict[str, Any]], resource: str) -> set[str]:
    allowed: set[str] = set()
    denied: set[str] = set()
    for st in statements:
        if resource in st["Resource"]:
            (allowed if st["Effect"] == "Allow" else denied).update(st["Action"])
    return allowed - denied


def test_gpu_identity_never_writes_the_models_bucket() -> None:
    gpu = _policy("sentinel-gpu")["Statement"]
    assert _allowed(gpu, "arn:aws:s3:::sentinel-models/*") == {"s3:GetObject"}
    assert not WRITES & _allowed(gpu, "arn:aws:s3:::sentinel-models")
    cpu = _policy("sentinel-cpu")["Statement"]
    assert {"s3:PutObject", "s3:GetObject"} <= _allowed(cpu, "arn:aws:s3:::sentinel-models/*")
    for statements in (cpu, gpu):  # nobody purges old versions or turns versioning off
        every = {a for st in statements if st["Effect"] == "Allow" for a in st["Action"]}
        assert not every & {"s3:*", "s3:DeleteObjectVersion", "s3:PutBucketVersioning"}


def test_helm_values_carry_the_same_policies_users_and_versioning() -> None:
    for policy in MINIO_VALUES["policies"]:
        expected = [
            {"effect": st["Effect"], "resources": st["Resource"], "actions": st["Action"]}
            for st in _policy(policy["name"])["Statement"]
        ]
        assert policy["statements"] == expected, f"{policy['name']} differs from its JSON"
    users = {u["accessKey"]: u["policy"] for u in MINIO_VALUES["users"]}
    assert users == {"sentinel-cpu": "sentinel-cpu", "sentinel-gpu": "sentinel-gpu"}
    versioned = {b["name"]: b.get("versioning", False) for b in MINIO_VALUES["buckets"]}
    assert versioned == {"sentinel-data": False, "sentinel-runs": False, "sentinel-models": True}


def _worker_settings(
    env: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Settings:
    for name in [n for n in os.environ if n.startswith("SENTINEL_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if isinstance(value, str) and name.startswith("SENTINEL_"):
            if name.endswith("_FILE"):  # the mounted Secret's file, here a stand-in
                stand_in = tmp_path / name
                stand_in.write_text("placeholder-value")
                value = str(stand_in)
            monkeypatch.setenv(name, value)
    return Settings()


@pytest.mark.parametrize("target", sorted(RENDERED))
def test_workers_accept_the_tls_settings_of_every_target(
    target: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    docs = RENDERED[target]
    configmaps = {d["metadata"]["name"]: d for d in by_kind(docs, "ConfigMap")}
    for deployment in by_kind(docs, "Deployment"):
        settings = _worker_settings(pod_env(deployment, configmaps), monkeypatch, tmp_path)
        config = tls_config(settings)  # raises ConfigurationError on a clear-text credential
        if target.startswith("prod"):
            assert settings.temporal_tls, f"{target}: production talks to Temporal over TLS"
            assert not isinstance(config, bool) and config.client_cert and config.client_private_key
            assert config.server_root_ca_cert is not None
