"""Webhooks people can trust, against real loopback receivers (HTTP and HTTPS with a CA made
here): HTTPS only, no redirects, signed deliveries, and the URL (a secret) never in an error,
a log line or a result. Each bad configuration is refused with its exact message."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.contracts.notify import NotifyRequest
from activities.infra.errors import ConfigurationError
from activities.infra.settings import Settings
from activities.notify import NotifyActivities
from tests.helpers.tls import make_test_ca
from tests.helpers.webhook import SIGNING_KEY, WebhookReceiver, signature_ok, webhook_config

TOKEN = "T0KEN-s3cr3t"
SUMMARY = NotifyRequest(model_name="shapes", workflow_id="retrain-shapes", outcome="failed")


def _refused(settings: Settings) -> str:
    with pytest.raises(ConfigurationError) as caught:
        NotifyActivities(settings)
    assert TOKEN not in str(caught.value)
    return str(caught.value)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            f"file:///etc/passwd?{TOKEN}",
            "SENTINEL_WEBHOOK_URL has scheme 'file': use https:// (http:// only to a loopback "
            "host)",
        ),
        (
            f"hooks.example.com/{TOKEN}",
            "SENTINEL_WEBHOOK_URL has no scheme: use https:// (http:// only to a loopback host)",
        ),
        (
            f"ftp://hooks.example.com/{TOKEN}",
            "SENTINEL_WEBHOOK_URL has scheme 'ftp': use https:// (http:// only to a loopback host)",
        ),
        (
            f"http://hooks.example.com/{TOKEN}",
            "SENTINEL_WEBHOOK_URL is plain http:// to a non-loopback host: use https://",
        ),
        (
            f"https://user:{TOKEN}@hooks.example.com/x",
            "SENTINEL_WEBHOOK_URL must not carry user:password@",
        ),
        (f"https:///{TOKEN}", "SENTINEL_WEBHOOK_URL names no host"),
        (f"https://hooks.example.com:99999/{TOKEN}", "SENTINEL_WEBHOOK_URL is not a valid URL"),
    ],
)
def test_webhook_urls_that_are_refused_at_start(url: str, message: str, tmp_path: Path) -> None:
    assert _refused(Settings(**webhook_config(tmp_path, url))) == message


def test_an_unsigned_webhook_is_refused_at_start() -> None:
    settings = Settings(webhook_url=SecretStr(f"https://hooks.example.com/{TOKEN}"))
    assert _refused(settings) == (
        "SENTINEL_WEBHOOK_URL is set but SENTINEL_WEBHOOK_SECRET_FILE is not: every delivery "
        "is signed; share that key with the receiver"
    )


def test_a_short_signing_key_is_refused_at_start(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("short\n")
    settings = Settings(
        webhook_url=SecretStr(f"https://hooks.example.com/{TOKEN}"), webhook_secret_file=key
    )
    assert _refused(settings) == (
        f"SENTINEL_WEBHOOK_SECRET_FILE {key} holds 5 bytes: use at least 16 random bytes "
        "(e.g. `openssl rand -hex 32`)"
    )


def test_the_url_comes_from_a_file_and_never_shows(tmp_path: Path) -> None:
    url_file = tmp_path / "url"
    url_file.write_text(f"https://hooks.example.com/{TOKEN}\n")
    config = webhook_config(tmp_path, "unused") | {"webhook_url": None}
    settings = Settings(**config, webhook_url_file=url_file)
    assert settings.webhook_url is not None
    assert settings.webhook_url.get_secret_value() == f"https://hooks.example.com/{TOKEN}"
    assert TOKEN not in repr(settings) and TOKEN not in str(settings)
    assert TOKEN not in repr(NotifyActivities(settings).target)


def test_https_receiver_with_the_ca_setting_gets_signed_deliveries(tmp_path: Path) -> None:
    ca = make_test_ca(tmp_path / "ca")
    with WebhookReceiver(tls=ca) as hook:
        settings = Settings(**webhook_config(tmp_path, hook.url + f"?token={TOKEN}", ca))
        result = ActivityEnvironment().run(NotifyActivities(settings).notify, SUMMARY)
    (delivery,) = hook.deliveries
    body = delivery.json()
    assert result.delivered and body["event"] == "failed" and body["model_name"] == "shapes"
    assert signature_ok(delivery)
    assert not signature_ok(delivery, key=SIGNING_KEY[:-1])  # another key does not verify
    assert delivery.headers["sentinel-delivery"] == body["delivery_id"]


def test_https_receiver_not_signed_by_the_trusted_ca_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without SENTINEL_WEBHOOK_CA_FILE the system CAs do not know the test CA."""
    ca = make_test_ca(tmp_path / "ca")
    with WebhookReceiver(tls=ca) as hook:
        settings = Settings(**webhook_config(tmp_path, f"{hook.url}/{TOKEN}"))
        with caplog.at_level(logging.DEBUG), pytest.raises(ApplicationError) as caught:
            ActivityEnvironment().run(NotifyActivities(settings).notify, SUMMARY)
    assert caught.value.message == (
        "webhook delivery failed: TLS certificate not trusted (unable to get local issuer "
        "certificate); see SENTINEL_WEBHOOK_CA_FILE"
    )
    assert hook.deliveries == []
    assert TOKEN not in caplog.text and "localhost" not in caplog.text


def test_a_redirecting_receiver_is_refused_and_not_followed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with WebhookReceiver() as elsewhere, WebhookReceiver(redirect_to=elsewhere.url) as hook:
        settings = Settings(**webhook_config(tmp_path, f"{hook.url}/{TOKEN}"))
        with caplog.at_level(logging.DEBUG), pytest.raises(ApplicationError) as caught:
            ActivityEnvironment().run(NotifyActivities(settings).notify, SUMMARY)
    assert caught.value.type == "WebhookRefusedError" and caught.value.non_retryable
    assert caught.value.message == (
        "webhook answered HTTP 307 (a redirect): redirects are not followed; set "
        "SENTINEL_WEBHOOK_URL to the final address"
    )
    assert [d.status for d in hook.deliveries] == [307] and elsewhere.deliveries == []
    assert TOKEN not in caplog.text


def _documented_check() -> Callable[..., bool]:
    """The five-line receiver check of docs/security.md ("Webhooks"), as written there."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    block = text.split("**A receiver checks a delivery in five lines**", 1)[1]
    code = block.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(code.strip().splitlines()) == 5, code
    namespace: dict[str, Any] = {"hmac": hmac, "hashlib": hashlib, "Mapping": Mapping}
    exec(code, namespace)  # our own documentation, run as code
    check: Callable[..., bool] = namespace["verified"]
    return check


def test_the_documented_receiver_check_accepts_and_refuses(tmp_path: Path) -> None:
    verified = _documented_check()
    with WebhookReceiver() as hook:
        settings = Settings(**webhook_config(tmp_path, hook.url))
        ActivityEnvironment().run(NotifyActivities(settings).notify, SUMMARY)
    (delivery,) = hook.deliveries
    headers = {
        name: delivery.headers[name.lower()]
        for name in ("Sentinel-Delivery", "Sentinel-Timestamp", "Sentinel-Signature")
    }
    sent = int(headers["Sentinel-Timestamp"])
    assert verified(SIGNING_KEY, headers, delivery.body, sent + 1)
    tampered = delivery.body.replace(b'"failed"', b'"succeeded"')
    assert tampered != delivery.body and not verified(SIGNING_KEY, headers, tampered, sent)
    assert not verified(b"another-key-of-sixteen-bytes", headers, delivery.body, sent)
    assert not verified(SIGNING_KEY, headers, delivery.body, sent + 301)  # a stale replay
    other_id = headers | {"Sentinel-Delivery": "00000000-0000-0000-0000-000000000000"}
    assert not verified(SIGNING_KEY, other_id, delivery.body, sent)
