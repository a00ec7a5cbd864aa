"""Client-side downloads (workflows/client/downloads.py) against a local HTTP server: every
file is verified against the digest it was announced with, and nothing unverified is left."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from activities.contracts.registry import DownloadLink
from activities.infra.errors import IntegrityError
from workflows.client.downloads import DownloadError, download_all

FILES = {"/report.md": b"# v3\n![curve](evidence/PR_curve.png)\n", "/pr.png": b"\x89PNG fake"}


@pytest.fixture
def server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = FILES.get(self.path)
            if body is None:
                self.send_response(403)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def link(base: str, path: str, name: str, content: bytes | None = None) -> DownloadLink:
    data = FILES[path] if content is None else content
    return DownloadLink(
        name=name, url=base + path, sha256=hashlib.sha256(data).hexdigest(), size=len(data)
    )


def test_files_are_written_where_named_once_verified(server: str, tmp_path: Path) -> None:
    report = (link(server, "/report.md", "report.md"), tmp_path / "report.md")
    picture = (link(server, "/pr.png", "evidence/PR_curve.png"), tmp_path / "evidence/PR_curve.png")
    written = download_all([report, picture])

    assert [(f.name, f.path, f.size) for f in written] == [
        ("report.md", tmp_path / "report.md", len(FILES["/report.md"])),
        ("evidence/PR_curve.png", tmp_path / "evidence/PR_curve.png", len(FILES["/pr.png"])),
    ]
    assert (tmp_path / "evidence/PR_curve.png").read_bytes() == FILES["/pr.png"]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["PR_curve.png", "evidence", "report.md"]


def test_a_file_that_does_not_match_its_digest_is_refused_and_nothing_is_written(
    server: str, tmp_path: Path
) -> None:
    good = (link(server, "/report.md", "report.md"), tmp_path / "report.md")
    tampered = link(server, "/pr.png", "evidence/PR_curve.png", content=b"what metadata says")
    with pytest.raises(IntegrityError, match=r"refusing evidence/PR_curve.png: .*nothing was"):
        download_all([good, (tampered, tmp_path / "evidence/PR_curve.png")])
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # not even the good one


def test_an_expired_or_refused_link_names_the_file(server: str, tmp_path: Path) -> None:
    gone = DownloadLink(name="model.pt", url=server + "/expired", sha256="0" * 64, size=1)
    with pytest.raises(DownloadError, match=r"cannot download model.pt: S3 answered HTTP 403"):
        download_all([(gone, tmp_path / "model.pt")])
    assert list(tmp_path.iterdir()) == []


def test_links_are_signed_for_the_public_s3_url_without_reaching_it() -> None:
    from datetime import timedelta
    from urllib.parse import parse_qs, urlsplit

    from activities.infra.errors import ConfigurationError
    from activities.infra.links import LinkSigner
    from activities.infra.settings import Settings

    settings = Settings(
        s3_access_key="reader",
        s3_secret_key="secret-value",
        s3_public_url="https://s3.example.com:8443",
    )
    # The region is known, so signing sends no request (the host does not exist).
    url = LinkSigner.from_settings(settings, store=None).link(  # type: ignore[arg-type]
        "sentinel-models", "models/m/v3/model.pt", timedelta(minutes=5)
    )
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "https",
        "s3.example.com:8443",
        "/sentinel-models/models/m/v3/model.pt",
    )
    assert query["X-Amz-Expires"] == ["300"] and "secret-value" not in url
    assert query["X-Amz-Credential"][0].startswith("reader/")
    with pytest.raises(ConfigurationError, match="SENTINEL_S3_PUBLIC_URL must look like"):
        LinkSigner.from_settings(
            settings.model_copy(update={"s3_public_url": "s3.example.com"}),
            store=None,  # type: ignore[arg-type]
        )
