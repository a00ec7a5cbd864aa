"""Every setting of activities/settings.py has its deploy entry, and nothing else does.

The rule, for SENTINEL_<FIELD> of every Settings field (tests/deploy/_support.py:SettingNames):

* .env.example: each name once, set (``NAME=value``) or commented out (``# NAME=value``,
  documented but unset), with a one-line comment right above it.
* compose.yaml: each worker service's environment has every name except the *secret values*
  (fields with a ``<field>_FILE`` twin, the S3 keys); those reach the containers as compose
  secrets, and their ``_FILE`` variable points at the mounted file.
* Kubernetes: each worker Deployment's environment (ConfigMap via envFrom, plus env) has every
  name except the secret values, counting ``# SENTINEL_X: ...`` lines in the ConfigMap as
  documented-but-unset; secret values never appear; every ``*_FILE`` setting points into a
  mounted Secret volume, at a key the Secret template defines.
* Anywhere under deploy/ (and the Dockerfiles), a SENTINEL_ name that is not a setting fails:
  the prefix belongs to the Settings class.

So adding a setting without its deploy entries, or renaming one, fails here with the file to
edit. The values themselves are also parsed by the real Settings class.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from activities.infra.settings import Settings

from ._k8s import by_kind, pod_env, rendered, secret_templates
from ._support import (
    COMPOSE_FILE,
    CONFIGMAP_FILE,
    DEPLOY,
    DOCKERFILES,
    ENV_EXAMPLE,
    SENTINEL_NAME,
    commented_keys,
    dockerfile_env,
    env_example,
    interpolate,
    setting_names,
)

NAMES = setting_names()
RENDERED = rendered()
COMPOSE = yaml.safe_load(COMPOSE_FILE.read_text())
WORKER_SERVICES = ("worker-cpu", "worker-gpu")


def _diff(expected: frozenset[str] | set[str], actual: set[str], where: str) -> str:
    missing, unknown = sorted(expected - actual), sorted(actual - expected)
    return (
        f"{where}: missing {missing} (add an entry for each new setting), "
        f"unknown {unknown} (not a field of activities/settings.py:Settings)"
    )


def _parses(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """Settings built from exactly this environment; *_FILE paths remapped to temp files."""
    for name in [n for n in os.environ if n.startswith("SENTINEL_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        if name in NAMES.file_paths and value:
            stand_in = tmp_path / name
            stand_in.write_text("placeholder-value")
            value = str(stand_in)
        monkeypatch.setenv(name, value)
    return Settings()


def test_the_settings_class_is_what_this_rule_expects():
    assert NAMES.secret_values == {
        "SENTINEL_S3_ACCESS_KEY",
        "SENTINEL_S3_SECRET_KEY",
        "SENTINEL_WEBHOOK_URL",
    }, "a new secret setting with a _file twin: give it a Secret/compose secret and update here"
    assert "SENTINEL_WORKER_QUEUES" in NAMES.all


def test_env_example_documents_every_setting_once_with_a_comment():
    entries = env_example()
    declared = {n for n in entries if n.startswith("SENTINEL_")}
    assert declared == NAMES.all, _diff(NAMES.all, declared, str(ENV_EXAMPLE))
    for entry in entries.values():
        assert entry.comment, f".env.example:{entry.line}: {entry.name} needs a comment above it"


def test_env_example_values_are_valid_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    env = {e.name: e.value for e in env_example().values() if e.name.startswith("SENTINEL_")}
    settings = _parses(env, monkeypatch, tmp_path)  # commented ones too: their examples parse
    assert settings.s3_access_key is not None


@pytest.mark.parametrize("service", WORKER_SERVICES)
def test_compose_workers_get_every_setting(
    service: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    env = COMPOSE["services"][service]["environment"]
    names = {n for n in env if n.startswith("SENTINEL_")}
    assert names == NAMES.container_env, _diff(
        NAMES.container_env, names, f"{COMPOSE_FILE}:{service}"
    )
    sources = {s.get("environment") for s in COMPOSE["secrets"].values()}
    assert NAMES.secret_values <= sources, "secret values reach compose workers as secrets only"
    example = {e.name: e.value for e in env_example().values() if e.active}
    resolved = {k: interpolate(str(v), example) for k, v in env.items() if v is not None}
    _parses(resolved, monkeypatch, tmp_path)


def test_compose_controller_gets_the_worker_settings():
    controller = set(COMPOSE["services"]["controller-apply"]["environment"])
    assert controller == NAMES.container_env - {"SENTINEL_WORKER_QUEUES"}


@pytest.mark.parametrize("target", sorted(RENDERED))
def test_k8s_workers_get_every_setting(
    target: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    docs = RENDERED[target]
    configmaps = {d["metadata"]["name"]: d for d in by_kind(docs, "ConfigMap")}
    documented = commented_keys(CONFIGMAP_FILE)
    for deployment in by_kind(docs, "Deployment"):
        name = deployment["metadata"]["name"]
        env = pod_env(deployment, configmaps)
        real = {n for n in env if n.startswith("SENTINEL_")}
        accounted = real | set(documented)
        assert accounted == NAMES.container_env, _diff(
            NAMES.container_env, accounted, f"{CONFIGMAP_FILE} + {target}/{name}"
        )
        assert not real & NAMES.secret_values, f"{name}: secret values go through files"
        _parses({k: v for k, v in env.items() if isinstance(v, str)}, monkeypatch, tmp_path)


# Least privilege: each Deployment mounts its own S3 identity, and only the CPU workers (who
# send notifications) the webhook's Secret; these file settings stay unset for the GPU ones.
S3_SECRET = {
    "sentinel-worker-cpu": "sentinel-s3-credentials",
    "sentinel-worker-gpu": "sentinel-s3-gpu",
}
CPU_ONLY_SECRETS = {"sentinel-webhook"}
WEBHOOK_FILES = {
    "SENTINEL_WEBHOOK_URL_FILE",
    "SENTINEL_WEBHOOK_SECRET_FILE",
    "SENTINEL_WEBHOOK_CA_FILE",
}


@pytest.mark.parametrize("target", sorted(RENDERED))
def test_k8s_file_settings_point_into_mounted_secrets(target: str):
    docs = RENDERED[target]
    configmaps = {d["metadata"]["name"]: d for d in by_kind(docs, "ConfigMap")}
    templates = secret_templates()
    every_used = set()
    for deployment in by_kind(docs, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
        env: dict[str, Any] = {**commented_keys(CONFIGMAP_FILE), **pod_env(deployment, configmaps)}
        gpu = deployment["metadata"]["name"] == "sentinel-worker-gpu"
        used_secrets = set()
        for name in sorted(NAMES.file_paths - (WEBHOOK_FILES if gpu else set())):
            path = Path(env[name])
            mount = mounts.get(str(path.parent))
            assert mount, f"{deployment['metadata']['name']}: {name}={path} is in no mount"
            assert mount.get("readOnly") is True
            secret = volumes[mount["name"]].get("secret")
            assert secret, f"{name}: {path.parent} must be a Secret volume"
            template = templates.get(secret["secretName"])
            assert template, f"no template in deploy/k8s/secrets for {secret['secretName']}"
            assert path.name in template.get("stringData", {}), f"{name}: no key {path.name}"
            used_secrets.add(secret["secretName"])
        mounted = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
        assert used_secrets == mounted, "every Secret mounted is read"
        own_s3 = S3_SECRET[deployment["metadata"]["name"]]
        assert own_s3 in mounted and not (set(S3_SECRET.values()) - {own_s3}) & mounted
        if gpu:
            assert not mounted & CPU_ONLY_SECRETS, "GPU workers get no webhook URL or key"
        every_used |= used_secrets
    assert every_used == set(templates), "every Secret template is mounted and read"


def test_no_unknown_sentinel_names_anywhere_in_deploy():
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            for name in SENTINEL_NAME.findall(line):
                assert name in NAMES.all, f"{path}:{number}: {name} is not a setting"


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_image_defaults_agree_with_compose_and_k8s(kind: str):
    env = dockerfile_env(DOCKERFILES[kind])
    for name in (n for n in env if n.startswith("SENTINEL_")):
        assert name in NAMES.all, f"{DOCKERFILES[kind]}: {name} is not a setting"
    configmap = by_kind(RENDERED["base"], "ConfigMap")[0]["data"]
    example = {e.name: e.value for e in env_example().values() if e.active}
    assert env["SENTINEL_CACHE_DIR"] == configmap["SENTINEL_CACHE_DIR"]
    assert env["SENTINEL_CACHE_DIR"] == example["SENTINEL_CACHE_DIR"]
    volumes = [interpolate(v, example) for v in COMPOSE["services"][f"worker-{kind}"]["volumes"]]
    assert any(v.endswith(f":{env['SENTINEL_CACHE_DIR']}") for v in volumes), "cache not mounted"
