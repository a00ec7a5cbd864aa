"""Worker images (deploy/docker): hadolint, what the images run, and torch/CUDA consistency."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from workers.wiring import parse_queues

from ._support import (
    APP_LABEL,
    DOCKER,
    DOCKERFILES,
    REPO,
    dockerfile_env,
    dockerfile_instructions,
    dockerignore_allows,
    ignore_patterns,
    tool,
)

CHECK = ["python", "-m", "workers", "--check"]


def _arg_defaults(path: Path) -> dict[str, str]:
    defaults: dict[str, str] = {}
    for instruction, args in dockerfile_instructions(path):
        if instruction == "ARG" and "=" in args:
            name, value = args.split("=", 1)
            defaults[name] = value
    return defaults


def _base_images(path: Path) -> list[str]:
    """FROM images with ARG defaults substituted (hadolint cannot see through ARGs)."""
    defaults = _arg_defaults(path)
    images = []
    for instruction, args in dockerfile_instructions(path):
        if instruction == "FROM":
            image = args.split()[0]
            images.append(re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], image))
    return images


def _constraint(package: str) -> str:
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.startswith(f"{package}=="):
            return line.split("==", 1)[1].strip()
    pytest.fail(f"constraints.txt pins no {package}: the images install torch from it")


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_hadolint_passes(kind: str):
    """hadolint at `info` threshold with deploy/docker/.hadolint.yaml (justified ignores only)."""
    config = str(DOCKER / ".hadolint.yaml")
    result = subprocess.run(
        [tool("hadolint"), "--no-color", "-c", config, "-f", "json", str(DOCKERFILES[kind])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    findings = json.loads(result.stdout or "[]")
    assert result.returncode == 0 and not findings, (
        "\n".join(f"{f['file']}:{f['line']} {f['code']} {f['message']}" for f in findings)
        or result.stderr
    )


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_base_images_come_from_trusted_registries(kind: str):
    """hadolint's DL3026 cannot see through `FROM ${ARG}`: resolve the defaults and check here."""
    config = yaml.safe_load((DOCKER / ".hadolint.yaml").read_text())
    stages = {
        args.split()[-1] for i, args in dockerfile_instructions(DOCKERFILES[kind]) if i == "FROM"
    }
    for image in _base_images(DOCKERFILES[kind]):
        if image in stages:
            continue  # a previous stage
        first = image.split("/", 1)[0]
        registry = first if "/" in image and ("." in first or ":" in first) else "docker.io"
        assert registry in config["trustedRegistries"], f"{image}: untrusted registry"
        assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image


def test_hadolint_ignores_are_justified():
    text = (DOCKER / ".hadolint.yaml").read_text()
    ignored = re.findall(r"^\s*-\s*(DL\d+|SC\d+)\s*$", text, flags=re.MULTILINE)
    for code in ignored:
        assert re.search(rf"#.*{code}", text), f"{code} is ignored without a comment saying why"
    for path in DOCKERFILES.values():
        assert "hadolint ignore" not in path.read_text(), f"{path}: put ignores in .hadolint.yaml"


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_image_runs_the_worker_as_non_root_with_a_check(kind: str):
    path = DOCKERFILES[kind]
    instructions = dockerfile_instructions(path)
    final = instructions[max(n for n, (i, _) in enumerate(instructions) if i == "FROM") :]
    entrypoint = [json.loads(a) for i, a in final if i == "ENTRYPOINT"]
    assert entrypoint == [["tini", "--", "python", "-m", "workers"]], "exec form, tini as PID 1"
    healthcheck = [a for i, a in final if i == "HEALTHCHECK"]
    assert len(healthcheck) == 1 and json.loads(healthcheck[0].split("CMD", 1)[1]) == CHECK
    users = [a for i, a in final if i == "USER"]
    assert users == ["10001:10001"], "numeric non-root user, matching k8s runAsUser/fsGroup"
    labels = " ".join(a for i, a in final if i == "LABEL")
    assert f"{APP_LABEL[0]}={APP_LABEL[1]}" in labels.split()
    env = dockerfile_env(path)
    assert parse_queues(env["SENTINEL_WORKER_QUEUES"]) == (kind,)
    # With a read-only root filesystem only /tmp and the cache dir are writable.
    for name in ("MPLCONFIGDIR", "XDG_CACHE_HOME", "TRITON_CACHE_DIR"):
        if name in env:
            assert env[name].startswith(("/tmp/", env["SENTINEL_CACHE_DIR"])), name
    for instruction, args in final:
        assert instruction != "ADD", "COPY only"
        if instruction == "COPY":
            assert args.startswith("--from="), "runtime copies only built artifacts"


def test_cpu_image_is_python_slim_with_cpu_torch():
    images = _base_images(DOCKERFILES["cpu"])
    assert all(re.fullmatch(r"python:3\.11-slim(-\w+)?", image) for image in images), images
    text = DOCKERFILES["cpu"].read_text()
    assert "--index-url https://download.pytorch.org/whl/cpu" in text
    assert "-c constraints.txt torch torchvision" in text
    assert "assert not torch.version.cuda" in text


def test_gpu_image_cuda_base_matches_the_pinned_torch_build():
    """constraints.txt's torch is a CUDA 13.0 build (+cu130): same CUDA in base and index."""
    _constraint("torch")
    _constraint("torchvision")
    defaults = _arg_defaults(DOCKERFILES["gpu"])
    cuda = re.fullmatch(
        r"nvidia/cuda:(\d+)\.(\d+)\.\d+-(?:cudnn-)?runtime-ubuntu[\d.]+", defaults["CUDA_IMAGE"]
    )
    assert cuda, f"{defaults['CUDA_IMAGE']}: a CUDA *runtime* base is expected"
    index = re.fullmatch(r"https://download\.pytorch\.org/whl/cu(\d+)", defaults["TORCH_INDEX"])
    assert index and index.group(1) == f"{cuda.group(1)}{cuda.group(2)}", (
        f"torch index {defaults['TORCH_INDEX']} does not match {defaults['CUDA_IMAGE']}"
    )
    assert defaults["PYTHON_VERSION"] == "3.11", "same interpreter as the CPU image"
    text = DOCKERFILES["gpu"].read_text()
    assert '--index-url "${TORCH_INDEX}" -c constraints.txt torch torchvision' in text
    assert "assert torch.version.cuda" in text
    for image in _base_images(DOCKERFILES["gpu"]):
        assert not image.endswith(":latest") and ":" in image, image


def test_dockerignore_is_an_allowlist_of_what_the_images_copy():
    cpu, gpu = (DOCKER / f"Dockerfile.{k}.dockerignore" for k in ("cpu", "gpu"))
    patterns = ignore_patterns(cpu)
    assert patterns == ignore_patterns(gpu), "keep both .dockerignore files identical"
    assert patterns[0] == "*", "allowlist: exclude everything first"
    for path in DOCKERFILES.values():
        for instruction, args in dockerfile_instructions(path):
            if instruction == "COPY" and not args.startswith("--from="):
                for source in args.split()[:-1]:
                    name = source.rstrip("*")
                    if (REPO / name).exists():
                        probe = f"{name}/__init__.py" if (REPO / name).is_dir() else name
                        assert dockerignore_allows(patterns, probe), (
                            f"{path.name}: {source} ignored"
                        )
    leaks = (".git/config", ".venv/bin/python", ".env", "deploy/compose/.env", "tests/x.py")
    dev_room = ("workers/dev/__main__.py", "workers/dev/synthetic/images.py")
    for leak in (*leaks, *dev_room):
        assert not dockerignore_allows(patterns, leak), f"{leak} would reach the build context"
    assert not dockerignore_allows(patterns, "activities/__pycache__/settings.cpython-311.pyc")
    assert dockerignore_allows(patterns, "workers/__main__.py"), "the worker entry point ships"
