"""Nothing under deploy/ holds a real secret: templates and examples carry placeholders only."""

from __future__ import annotations

import base64

import pytest
import yaml

from ._k8s import secret_templates
from ._secrets import PLACEHOLDER, REAL_SECRET_SHAPES, is_secret_key, secret_findings
from ._support import (
    DEPLOY,
    env_example,
    load_all,
    yaml_files,
)

ALL_FILES = sorted(p for p in DEPLOY.rglob("*") if p.is_file())


def test_no_file_contains_a_credential_shape():
    for path in ALL_FILES:
        text = path.read_text()
        for what, shape in REAL_SECRET_SHAPES.items():
            assert not shape.search(text), f"{path}: looks like a {what}"


def test_no_yaml_value_under_a_secret_key_is_real():
    findings = []
    for path in yaml_files():
        for doc in load_all(path):
            findings += secret_findings(doc, str(path.relative_to(DEPLOY)))
    assert not findings, "credentials must be placeholders (change-me...):\n" + "\n".join(findings)


def test_secret_templates_hold_placeholders_only():
    templates = secret_templates()
    assert templates
    for name, secret in templates.items():
        values = dict(secret.get("stringData", {}))
        for key, encoded in secret.get("data", {}).items():
            values[key] = base64.b64decode(encoded).decode()
        assert values, f"{name}: a template with no keys"
        for key, value in values.items():
            assert PLACEHOLDER.match(value), f"{name}.{key}: {value!r} is not a placeholder"


def test_env_example_credentials_are_placeholders():
    for entry in env_example().values():
        if is_secret_key(entry.name):
            assert PLACEHOLDER.match(entry.value), f".env.example: {entry.name}={entry.value!r}"


def test_compose_and_helm_take_credentials_by_reference():
    compose = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    for name, secret in compose["secrets"].items():
        assert set(secret) == {"environment"}, f"compose secret {name}: from .env, not a file"
    for values in (DEPLOY / "k8s" / "helm").glob("*.yaml"):
        text = values.read_text()
        assert "existingSecret" in text, f"{values}: credentials come from existing Secrets"


@pytest.mark.parametrize(
    ("tree", "expected"),
    [
        ({"password": "hunter2"}, 1),
        ({"env": {"POSTGRES_PASSWORD": "s3cr3t-value"}}, 1),
        ({"users": [{"secretKey": "abcdef123456"}]}, 1),
        ({"api_key": "change-me"}, 0),
        ({"POSTGRES_PWD": "${POSTGRES_PASSWORD:?set it}"}, 0),
        ({"existingSecretKey": "password", "secretKeyRef": {"name": "x"}}, 0),
        ({"existingSecret": "pg", "secretKey": "password"}, 0),
        ({"automountServiceAccountToken": False}, 0),
        ({"SENTINEL_S3_SECRET_KEY_FILE": "/run/secrets/s3_secret_key"}, 0),
    ],
)
def test_the_detector_itself(tree: dict, expected: int):
    """The checks above would catch a real value (and leave references alone)."""
    assert len(secret_findings(tree, "t")) == expected


def test_the_shape_detector_itself():
    fake_key = "-----BEGIN RSA " + "PRIVATE KEY-----"
    fake_aws = "AKIA" + "ABCDEFGHIJKLMNOP"
    assert REAL_SECRET_SHAPES["PEM private key"].search(fake_key)
    assert REAL_SECRET_SHAPES["AWS access key id"].search(fake_aws)
