"""Credential detectors of the deploy checks (placeholders allowed, real-looking values not)."""

from __future__ import annotations

import re
from typing import Any

# ---------------------------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------------------------
PLACEHOLDER = re.compile(
    r"^(change-me[\w.-]*|<[^<>]+>|\$\{[A-Za-z_][A-Za-z0-9_]*(:?[-?][^}]*)?\})$"
)
# Key names whose value would be a credential (compared lower case, without - and _).
SECRET_KEY_SUFFIXES = ("password", "passwd", "pwd", "secret", "secretkey", "apikey", "token")
SECRET_KEY_SUFFIXES += ("privatekey", "clientsecret")
# Shapes of real credentials that must never appear anywhere under deploy/.
REAL_SECRET_SHAPES = {
    "PEM private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "PEM certificate": re.compile(r"-----BEGIN CERTIFICATE-----"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "Slack webhook": re.compile(r"hooks\.slack\.com/services/T[A-Za-z0-9]+/"),
    "JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\."),
    "MinIO default credentials": re.compile(r"\bminioadmin\b"),
}


def is_secret_key(key: str) -> bool:
    """A mapping key / variable name whose value is a credential (not a reference to one)."""
    flat = re.sub(r"[-_.]", "", key).lower()
    if flat.startswith("existing") or flat.endswith(("file", "name", "ref", "keyref")):
        return False
    return flat.endswith(SECRET_KEY_SUFFIXES)


def secret_findings(node: Any, where: str) -> list[str]:
    """Credential-looking values in a parsed YAML tree: secret keys with non-placeholder values."""
    found: list[str] = []
    if isinstance(node, dict):
        # Beside `existingSecret`, `secretKey` & co. name a key of that Secret: a reference.
        references = any(str(k).lower().startswith("existing") for k in node)
        for key, value in node.items():
            here = f"{where}.{key}"
            credential = isinstance(value, str | int) and not isinstance(value, bool)
            secret_key = not references and isinstance(key, str) and is_secret_key(key)
            if credential and secret_key and not PLACEHOLDER.match(str(value)):
                found.append(f"{here} = {value!r}")
            found += secret_findings(value, here)
    elif isinstance(node, list):
        for n, item in enumerate(node):
            found += secret_findings(item, f"{where}[{n}]")
    return found
