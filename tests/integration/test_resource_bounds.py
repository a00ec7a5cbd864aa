"""Bounded resources on the real S3 server: paged listings, size caps, image caps, a full disk.

Nothing read from storage may take unbounded memory: listings hold one page, documents read
whole have a cap, images a byte and a pixel cap; a full local disk is a local problem (typed,
final), never "S3 unreachable" retried again and again.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from PIL import Image
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.contracts.dataset import AssembleRequest, MinCounts
from activities.dataset import DatasetActivities, load_manifest
from activities.dataset.verified import list_source
from activities.infra.errors import ObjectTooLargeError
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from tests.faults.proxy import FaultyProxy
from tests.helpers.stack import REPO_ROOT
from workers.dev import synthetic


def _prefix() -> str:
    return f"datasets/bounds-{uuid.uuid4().hex[:8]}"


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (40, 90, 160)).save(buffer, "PNG")
    return buffer.getvalue()


def _assemble(settings: Settings, store: ObjectStore, prefix: str, **fields: object) -> object:
    request = AssembleRequest(
        dataset=f"b-{uuid.uuid4().hex[:8]}",
        prefix=prefix,
        min_counts=MinCounts(train=0, val=0, test=0),
        **fields,  # type: ignore[arg-type]
    )
    return ActivityEnvironment().run(DatasetActivities(settings, store).assemble_dataset, request)


def test_listings_are_paged_and_a_failed_page_resumes_from_its_last_key(
    settings: Settings, store: ObjectStore
) -> None:
    prefix, bucket = _prefix(), settings.data_bucket
    keys = [f"{prefix}/{folder}/obj{n:03d}" for folder in ("a", "b", "c") for n in range(9)]
    for key in keys:
        store.put_bytes(bucket, key, key.encode())
    calls: list[tuple[str, int]] = []
    listed = list_source(
        store, bucket, prefix, lambda stage, done, _: calls.append((stage, done)), page_size=5
    )
    assert sorted(listed) == sorted(k[len(prefix) + 1 :] for k in keys)
    assert calls == [("listed", n) for n in (5, 10, 15, 20, 25)]  # a heartbeat per page
    assert list(store.list_folders(bucket, f"{prefix}/", page_size=2)) == [
        f"{prefix}/a/",
        f"{prefix}/b/",
        f"{prefix}/c/",
    ]
    # The connection of the third page request is cut: that page alone is asked again.
    host, port = settings.s3_endpoint.rsplit(":", 1)
    proxy = FaultyProxy(host, int(port)).start()
    try:
        flaky = ObjectStore.from_settings(
            settings.model_copy(update={"s3_endpoint": proxy.endpoint}), backoff_seconds=0.1
        )
        proxy.arm(f"start-after={prefix.replace('/', '%2F')}%2Fb%2Fobj000".encode(), 0.05)
        again = [info.key for info in flaky.list(bucket, f"{prefix}/", page_size=5)]
        assert proxy.outages == 1
    finally:
        proxy.stop()
    assert again == sorted(keys)  # every key once, in order


def test_objects_read_whole_have_a_size_cap(settings: Settings, store: ObjectStore) -> None:
    bucket, key = settings.data_bucket, f"{_prefix()}/blob.json"
    store.put_bytes(bucket, key, b"x" * 1000)
    assert len(store.get_bytes(bucket, key, max_bytes=1000)) == 1000
    with pytest.raises(ObjectTooLargeError, match=r"blob.json is 0.0 MiB, over the 0.0 MiB"):
        store.get_bytes(bucket, key, max_bytes=999)


def test_a_coco_file_or_verified_list_over_the_cap_is_a_clear_bad_input(
    settings: Settings, store: ObjectStore
) -> None:
    prefix, bucket = _prefix(), settings.data_bucket
    synthetic.upload(store, bucket, prefix, layout="coco", count=4)
    tight = settings.model_copy(update={"max_document_mb": 0.001})  # about 1 KB
    with pytest.raises(ApplicationError) as info:
        _assemble(tight, store, prefix, format="coco")
    assert (info.value.type, info.value.non_retryable) == ("ObjectTooLargeError", True)
    assert f"{prefix}/annotations.json is" in info.value.message
    assert "SENTINEL_MAX_DOCUMENT_MB" in info.value.message
    yolo = _prefix()
    synthetic.upload(store, bucket, yolo, layout="yolo", count=4)
    store.put_bytes(bucket, f"{yolo}/verified.jsonl", b'"images/x.png"\n' * 200)
    with pytest.raises(ApplicationError) as info:
        _assemble(tight, store, yolo)
    assert info.value.type == "ObjectTooLargeError" and "verified.jsonl is" in info.value.message


def test_images_over_the_byte_or_pixel_cap_are_skipped_and_reported(
    settings: Settings, store: ObjectStore
) -> None:
    prefix, bucket = _prefix(), settings.data_bucket
    synthetic.upload(store, bucket, prefix, layout="yolo", count=4, size=64)
    store.put_bytes(bucket, f"{prefix}/images/wide.png", _png(600, 100))  # 60,000 px
    store.put_bytes(bucket, f"{prefix}/images/heavy.png", os.urandom(300_000))  # bytes only
    for name in ("wide", "heavy"):
        store.put_bytes(bucket, f"{prefix}/labels/{name}.txt", b"0 0.5 0.5 0.2 0.2\n")
    caps = settings.model_copy(update={"max_image_mb": 0.25, "max_image_megapixels": 0.05})
    result = _assemble(caps, store, prefix)
    manifest = load_manifest(store, result.snapshot)  # type: ignore[attr-defined]
    assert {i.key.rsplit("/", 1)[1] for i in manifest.images} == {
        f"{synthetic.stem_for(0, n)}.png" for n in range(4)
    }
    assert manifest.report.counts["image_too_large"] == 2
    examples = manifest.report.examples["image_too_large"]
    assert any("heavy.png: 300000 bytes > 262144 bytes" in e for e in examples)
    assert any("wide.png: 600x100 px > 50000 px" in e for e in examples)


_DISK_FULL_SCRIPT = """
import json, subprocess, sys, uuid
from pathlib import Path
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from activities.contracts.dataset import AssembleRequest, MinCounts
from activities.dataset import DatasetActivities
from activities.infra.errors import LocalDiskFullError
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore

cache = Path(sys.argv[1])
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(cache)], check=True)
settings = Settings().model_copy(update={"cache_dir": cache})
attempts = []
store = ObjectStore.from_settings(settings, backoff_seconds=0.01)
call = store.client.get_object
store.client.get_object = lambda *a, **k: attempts.append(1) or call(*a, **k)
out = {}
try:
    store.get_file(settings.data_bucket, sys.argv[2], cache / "big.bin")
except LocalDiskFullError as exc:
    out["get_file"] = [type(exc).__name__, str(exc), len(attempts)]
request = AssembleRequest(
    dataset="full", prefix=sys.argv[3], min_counts=MinCounts(train=0, val=0, test=0)
)
try:
    ActivityEnvironment().run(DatasetActivities(settings, store).assemble_dataset, request)
except ApplicationError as exc:
    out["assemble"] = [exc.type, exc.non_retryable, exc.message]
print(json.dumps(out))
"""


def test_a_full_local_disk_is_a_final_local_error_not_s3_unreachable(
    settings: Settings, store: ObjectStore, tmp_path: Path
) -> None:
    """A real full file system: a 96 KB tmpfs mounted as the cache in a private mount namespace
    (``unshare``; skipped where the kernel does not allow it)."""
    if (
        shutil.which("unshare") is None
        or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode
    ):
        pytest.skip("unshare -rm (user and mount namespaces) is not available here")
    bucket, prefix = settings.data_bucket, _prefix()
    store.put_bytes(bucket, f"{prefix}/big.bin", os.urandom(400_000))
    synthetic.upload(store, bucket, f"{prefix}/ds", layout="yolo", count=12, size=96)
    cache = tmp_path / "cache"
    cache.mkdir()
    script = textwrap.dedent(_DISK_FULL_SCRIPT)
    run = subprocess.run(
        ["unshare", "-rm", sys.executable, "-c", script, str(cache), f"{prefix}/big.bin",
         f"{prefix}/ds"],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    kind, message, attempts = out["get_file"]
    assert (kind, attempts) == ("LocalDiskFullError", 1)  # at once, never retried
    assert "local disk full" in message and "unreachable" not in message
    kind, final, message = out["assemble"]
    assert (kind, final) == ("LocalDiskFullError", True)
    assert "SENTINEL_CACHE_MAX_GB" in message and "S3" not in message
