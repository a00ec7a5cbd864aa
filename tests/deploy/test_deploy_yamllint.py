"""Every YAML file under deploy/ passes yamllint with deploy/.yamllint."""

from __future__ import annotations

import subprocess
import sys

from ._support import DEPLOY, tool, yaml_files


def test_yamllint_passes():
    tool("yamllint")
    files = yaml_files()
    assert len(files) >= 15, files  # compose, k8s, helm values, configs: all of them
    config = str(DEPLOY / ".yamllint")
    result = subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "-f", "parsable", "-c", config, *files],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
