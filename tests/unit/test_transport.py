"""Transport to Temporal: credentials never travel in clear text, a certificate never goes
without its key. Each misconfiguration is refused at start, with its exact one-line message,
before any connection is attempted (no server is needed: nothing listens on the address)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.client import TLSConfig

from activities.infra.connection import connect, tls_config
from activities.infra.errors import ConfigurationError
from activities.infra.settings import Settings
from tests.helpers.tls import make_test_ca

REPO = Path(__file__).resolve().parents[2]
CLEAR_TEXT = "credentials would cross the network in clear text; set SENTINEL_TEMPORAL_TLS=true"


def _files(tmp_path: Path) -> dict[str, Path]:
    ca = make_test_ca(tmp_path / "ca")
    api_key = tmp_path / "api-key"
    api_key.write_text("an-api-key\n")
    return {"ca": ca.ca, "cert": ca.cert, "key": ca.key, "api_key": api_key}


def _refusal(**fields: object) -> str:
    with pytest.raises(ConfigurationError) as caught:
        tls_config(Settings(**fields))  # type: ignore[arg-type]  # fields per case
    return str(caught.value)


def test_tls_misconfigurations_are_refused(tmp_path: Path) -> None:
    f = _files(tmp_path)
    assert _refusal(temporal_api_key_file=f["api_key"]) == (
        f"SENTINEL_TEMPORAL_API_KEY_FILE is set but SENTINEL_TEMPORAL_TLS is false: {CLEAR_TEXT}"
    )
    assert _refusal(temporal_tls_cert_file=f["cert"], temporal_tls_key_file=f["key"]) == (
        f"SENTINEL_TEMPORAL_TLS_CERT_FILE is set but SENTINEL_TEMPORAL_TLS is false: {CLEAR_TEXT}"
    )
    assert _refusal(temporal_tls_ca_file=f["ca"]) == (
        f"SENTINEL_TEMPORAL_TLS_CA_FILE is set but SENTINEL_TEMPORAL_TLS is false: {CLEAR_TEXT}"
    )
    assert _refusal(temporal_tls=True, temporal_tls_cert_file=f["cert"]) == (
        "SENTINEL_TEMPORAL_TLS_CERT_FILE is set without SENTINEL_TEMPORAL_TLS_KEY_FILE: a client "
        "certificate needs its key (set both for mTLS, or neither for server-only TLS)"
    )
    assert _refusal(temporal_tls=True, temporal_tls_key_file=f["key"]) == (
        "SENTINEL_TEMPORAL_TLS_KEY_FILE is set without SENTINEL_TEMPORAL_TLS_CERT_FILE: a client "
        "certificate needs its key (set both for mTLS, or neither for server-only TLS)"
    )
    missing = tmp_path / "nowhere.pem"
    assert _refusal(temporal_tls=True, temporal_tls_ca_file=missing) == (
        f"cannot read SENTINEL_TEMPORAL_TLS_CA_FILE {missing}: No such file or directory"
    )


def test_a_complete_tls_configuration(tmp_path: Path) -> None:
    f = _files(tmp_path)
    config = tls_config(
        Settings(
            temporal_tls=True,
            temporal_tls_ca_file=f["ca"],
            temporal_tls_server_name="temporal.internal",
            temporal_tls_cert_file=f["cert"],
            temporal_tls_key_file=f["key"],
            temporal_api_key_file=f["api_key"],
        )
    )
    assert isinstance(config, TLSConfig)
    assert config.server_root_ca_cert == f["ca"].read_bytes()
    assert config.domain == "temporal.internal"
    assert config.client_cert == f["cert"].read_bytes()
    assert config.client_private_key == f["key"].read_bytes()
    assert tls_config(Settings(temporal_tls=True)) is True  # system CAs, server-only TLS
    assert tls_config(Settings()) is False


async def test_connect_refuses_before_trying(tmp_path: Path) -> None:
    """No retry loop, no network: the address is never dialed (nothing listens there)."""
    settings = Settings(
        temporal_address="127.0.0.1:9", temporal_api_key_file=_files(tmp_path)["api_key"]
    )
    with pytest.raises(ConfigurationError, match=r"^SENTINEL_TEMPORAL_API_KEY_FILE is set but"):
        await connect(settings, timeout=60)


def test_a_worker_with_an_api_key_and_no_tls_exits_2_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    env |= {
        "PYTHONPATH": str(REPO),
        "SENTINEL_TEMPORAL_ADDRESS": "127.0.0.1:9",
        "SENTINEL_TEMPORAL_API_KEY_FILE": str(_files(tmp_path)["api_key"]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "workers", "--check"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: SENTINEL_TEMPORAL_API_KEY_FILE is set but SENTINEL_TEMPORAL_TLS is false: "
        f"{CLEAR_TEXT}"
    ]


def test_the_cli_with_a_certificate_but_no_key_exits_2_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENTINEL_")}
    env |= {
        "PYTHONPATH": str(REPO),
        "SENTINEL_TEMPORAL_ADDRESS": "127.0.0.1:9",
        "SENTINEL_TEMPORAL_TLS": "true",
        "SENTINEL_TEMPORAL_TLS_CERT_FILE": str(_files(tmp_path)["cert"]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "workflows.client.cli", "models", "list", "detector"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: SENTINEL_TEMPORAL_TLS_CERT_FILE is set without SENTINEL_TEMPORAL_TLS_KEY_FILE: a "
        "client certificate needs its key (set both for mTLS, or neither for server-only TLS)"
    ]
