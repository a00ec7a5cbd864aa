"""moto's S3 server with its objects kept on disk: ``python -m workers.dev.s3_store``.

moto keeps every object in memory, so a restart of the embedded stack used to lose every
dataset, checkpoint and model while Temporal (a SQLite file) kept the runs that point at them.
This process serves moto's S3 application over HTTP, unchanged, and mirrors its buckets and
objects into a directory:

- at start, the directory is read back *through the S3 API* (in-process requests to the same
  application) before the port opens, so no client ever sees a half-restored store;
- every successful ``PUT``, ``POST`` or ``DELETE`` marks the mirror dirty, and a background
  thread writes the changes out about a second later (a crash loses at most that second);
- ``SIGTERM`` / ``SIGINT`` stop serving, write the mirror a last time and exit 0.

On disk: ``blobs/{sha256}`` (object bytes, content-addressed, verified when read back) and
``index.json`` (bucket -> key -> blob, user metadata, content type), replaced atomically.
JSON and raw bytes only: nothing read back is ever unpickled or executed. Only the current
version of each object is kept (buckets are not versioned here) and objects restored get a
new ``Last-Modified``; single-part objects keep their ETag (multipart ones get a plain MD5).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import signal
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server
from werkzeug.test import Client

log = logging.getLogger("sentinel.s3_store")

INDEX = "index.json"
FLUSH_DELAY_SECONDS = 0.5
"""Quiet time after a change before the mirror is written (writes come in bursts)."""

_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_AUTH = (
    "AWS4-HMAC-SHA256 Credential=mirror/20260101/us-east-1/s3/aws4_request, "
    "SignedHeaders=host, Signature=0"
)
_MUTATING = frozenset({"PUT", "POST", "DELETE"})
_META = "x-amz-meta-"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass(frozen=True)
class Record:
    """One object as the mirror knows it."""

    etag: str
    blob: str
    metadata: dict[str, str]
    content_type: str

    def to_json(self) -> dict[str, Any]:
        return {"blob": self.blob, "metadata": self.metadata, "content_type": self.content_type}


class _S3:
    """In-process S3 requests to moto's application (path style, no network)."""

    def __init__(self, app: WsgiApp) -> None:
        self.client = Client(app)
        # moto checks no signature, but without one it treats a read as anonymous (403).
        self.auth = {"Authorization": _AUTH}

    def _path(self, bucket: str, key: str = "") -> str:
        return f"/{bucket}/{quote(key, safe='/')}" if key else f"/{bucket}"

    def buckets(self) -> list[str]:
        root = ET.fromstring(self.client.get("/", headers=self.auth).data)
        return [e.text or "" for e in root.iter(f"{_NS}Name")]

    def keys(self, bucket: str) -> Iterator[tuple[str, str]]:
        """``(key, etag)`` of every object in ``bucket``."""
        token: str | None = None
        while True:
            query: dict[str, str] = {"list-type": "2", "max-keys": "1000"}
            if token:
                query["continuation-token"] = token
            root = ET.fromstring(
                self.client.get(self._path(bucket), query_string=query, headers=self.auth).data
            )
            for item in root.iter(f"{_NS}Contents"):
                yield item.findtext(f"{_NS}Key", ""), item.findtext(f"{_NS}ETag", "").strip('"')
            token = root.findtext(f"{_NS}NextContinuationToken")
            if root.findtext(f"{_NS}IsTruncated") != "true" or not token:
                return

    def get(self, bucket: str, key: str) -> tuple[bytes, str, dict[str, str], str] | None:
        """Bytes, ETag, user metadata and content type (None when it vanished meanwhile)."""
        response = self.client.get(self._path(bucket, key), headers=self.auth)
        if response.status_code != 200:
            return None
        headers = response.headers
        metadata = {k[len(_META) :]: v for k, v in headers.items() if k.lower().startswith(_META)}
        etag = (headers.get("ETag") or "").strip('"')
        return response.data, etag, metadata, headers.get("Content-Type") or ""

    def create_bucket(self, bucket: str) -> None:
        self.client.put(self._path(bucket), headers=self.auth)

    def put(self, bucket: str, key: str, data: bytes, record: Record) -> str:
        headers = {**self.auth, **{f"{_META}{k}": v for k, v in record.metadata.items()}}
        if record.content_type:
            headers["Content-Type"] = record.content_type
        response = self.client.put(self._path(bucket, key), data=data, headers=headers)
        if response.status_code != 200:
            raise OSError(f"restoring {bucket}/{key} failed: HTTP {response.status_code}")
        return (response.headers.get("ETag") or "").strip('"')


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)


class Mirror:
    """The directory copy of a moto S3 application's buckets and objects."""

    def __init__(self, app: WsgiApp, directory: Path) -> None:
        self.s3 = _S3(app)
        self.directory = directory
        self.blobs = directory / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.known: dict[str, dict[str, Record]] = {}
        self.dirty = threading.Event()
        self._lock = threading.Lock()

    def restore(self) -> tuple[int, int]:
        """Recreate the mirrored buckets and objects; returns ``(buckets, objects)``."""
        path = self.directory / INDEX
        if not path.exists():
            return 0, 0
        index: dict[str, dict[str, dict[str, Any]]] = json.loads(path.read_text())
        count = 0
        for bucket, objects in index.items():
            self.s3.create_bucket(bucket)
            known = self.known.setdefault(bucket, {})
            for key, entry in objects.items():
                data = (self.blobs / entry["blob"]).read_bytes()
                if hashlib.sha256(data).hexdigest() != entry["blob"]:
                    log.error("skipping %s/%s: its blob does not match its digest", bucket, key)
                    continue
                record = Record("", entry["blob"], entry["metadata"], entry["content_type"])
                etag = self.s3.put(bucket, key, data, record)
                known[key] = Record(etag, record.blob, record.metadata, record.content_type)
                count += 1
        return len(index), count

    def sync(self) -> int:
        """Write out what changed since the last sync; returns the objects fetched."""
        with self._lock:
            fetched, current = 0, {}
            for bucket in self.s3.buckets():
                before, after = self.known.get(bucket, {}), {}
                for key, etag in self.s3.keys(bucket):
                    old = before.get(key)
                    if old is not None and old.etag == etag:
                        after[key] = old
                        continue
                    record = self._fetch(bucket, key)
                    if record is not None:
                        after[key], fetched = record, fetched + 1
                current[bucket] = after
            index = {b: {k: r.to_json() for k, r in objs.items()} for b, objs in current.items()}
            _atomic_write(self.directory / INDEX, json.dumps(index, sort_keys=True).encode())
            self.known = current
            self._collect_garbage({r.blob for objs in current.values() for r in objs.values()})
            return fetched

    def _fetch(self, bucket: str, key: str) -> Record | None:
        got = self.s3.get(bucket, key)
        if got is None:
            return None
        data, etag, metadata, content_type = got
        blob = hashlib.sha256(data).hexdigest()
        if not (self.blobs / blob).exists():
            _atomic_write(self.blobs / blob, data)
        return Record(etag, blob, metadata, content_type)

    def _collect_garbage(self, referenced: set[str]) -> None:
        for path in self.blobs.iterdir():
            if path.name not in referenced and not path.name.startswith("."):
                path.unlink(missing_ok=True)

    def watch(self, app: WsgiApp) -> WsgiApp:
        """``app``, marking the mirror dirty after every request that may change objects."""

        def watched(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            result = app(environ, start_response)
            if environ.get("REQUEST_METHOD") in _MUTATING:
                self.dirty.set()
            return result

        return watched

    def flush_forever(self, stop: threading.Event) -> None:
        """Background loop: write the mirror shortly after each burst of changes."""
        while not stop.is_set():
            if not self.dirty.wait(0.5):
                continue
            time.sleep(FLUSH_DELAY_SECONDS)
            self.dirty.clear()
            try:
                self.sync()
            except Exception:  # a failed write is retried at the next change or at exit
                log.exception("writing the S3 mirror failed")
                self.dirty.set()


def serve(host: str, port: int, directory: Path) -> int:
    """Restore from ``directory``, serve until SIGTERM/SIGINT, write the mirror, return 0."""
    app = DomainDispatcherApplication(create_backend_app)
    mirror = Mirror(app, directory)
    started = time.monotonic()
    buckets, objects = mirror.restore()
    print(
        f"restored {objects} objects in {buckets} buckets from {directory} "
        f"in {time.monotonic() - started:.2f}s",
        flush=True,
    )
    server = make_server(
        host, port, mirror.watch(app), threaded=True, request_handler=MotoRequestHandler
    )
    stop = threading.Event()
    flusher = threading.Thread(target=mirror.flush_forever, args=(stop,), daemon=True)
    flusher.start()

    def _stop(signum: int, frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server.serve_forever()
    stop.set()
    flusher.join()
    mirror.sync()
    print(f"kept {sum(len(o) for o in mirror.known.values())} objects in {directory}", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workers.dev.s3_store",
        description="moto's S3 server whose buckets and objects survive a restart.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--data-dir", type=Path, required=True, help="where objects are kept")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    return serve(args.host, args.port, args.data_dir)


if __name__ == "__main__":
    sys.exit(main())
