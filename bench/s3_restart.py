"""Restart time of the embedded stack's persistent S3 store (``workers/dev/s3_store.py``).

Stores 1,000 synthetic images (YOLO layout: 2,001 objects + the verified list) and two
published model versions with yolov8n-sized weights (6 MB ``.pt``, 12 MB ``.onnx``), then
stops the store (it writes its last changes) and starts it again (it restores every object
before opening its port). Prints::

    s3_objects=<n>
    s3_stop_seconds=<s>       stop, including the last write of the mirror
    s3_restart_seconds=<s>    start until the port accepts connections (restore included)
    s3_mirror_megabytes=<mb>
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from activities.infra.settings import Settings  # noqa: E402
from activities.infra.signing import ensure_key_file, keyring  # noqa: E402
from activities.registry import load_registry_model  # noqa: E402
from activities.registry.core import Registry  # noqa: E402
from activities.registry.publish import Publisher  # noqa: E402
from tests.helpers.publishing import stored_publish_request  # noqa: E402
from tests.helpers.stack import prepared_store  # noqa: E402
from tests.helpers.tiny_onnx import onnx_bytes  # noqa: E402
from workers.dev import synthetic  # noqa: E402
from workers.dev.stack import S3Server, free_port  # noqa: E402


def _count(settings: Settings) -> int:
    store = prepared_store(settings)
    return sum(len(list(store.list(bucket))) for bucket in settings.buckets)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="100 images")
    args = parser.parse_args()
    images = 100 if args.quick else args.images
    root = Path(tempfile.mkdtemp(prefix="sentinel-s3-restart-"))
    server = S3Server(root, port=free_port(), data_dir=root / "objects")
    try:
        server.start()
        settings = Settings(
            s3_endpoint=server.endpoint,
            s3_access_key="bench",  # type: ignore[arg-type]
            s3_secret_key="bench-secret",  # type: ignore[arg-type]
            cache_dir=root / "cache",
            signing_key_file=ensure_key_file(root / "signing.keys"),
        )
        store = prepared_store(settings)
        synthetic.upload(
            store, settings.data_bucket, "datasets/bench", layout="yolo", count=images,
            verified=True, size=64,
        )  # fmt: skip
        publisher = Publisher(Registry(store, settings.models_bucket, keyring(settings)))
        for _ in range(2):
            pt, onnx = os.urandom(6 * 2**20), onnx_bytes(os.urandom(6 * 2**20))  # 12 MiB
            publisher.publish(
                stored_publish_request(store, settings, "bench", pt, onnx_payload=onnx)
            )
        objects = _count(settings)

        started = time.monotonic()
        server.stop()
        stop_seconds = time.monotonic() - started
        started = time.monotonic()
        server.start()
        restart_seconds = time.monotonic() - started

        restored = _count(settings)
        assert restored == objects, f"{restored} objects after the restart, {objects} before"
        loaded = load_registry_model(store, settings, "bench", "production", root / "v2.pt")
        assert loaded.stat().st_size == 6 * 2**20
        size = sum(p.stat().st_size for p in (root / "objects").rglob("*") if p.is_file())
        print(f"{images} images, 2 versions: {objects} objects kept in {root / 'objects'}")
        print(f"s3_objects={objects}")
        print(f"s3_stop_seconds={stop_seconds:.2f}")
        print(f"s3_restart_seconds={restart_seconds:.2f}")
        print(f"s3_mirror_megabytes={size / 2**20:.1f}")
        return 0
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
