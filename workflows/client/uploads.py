"""Uploading a local weights file: the one thing the client side does with object storage.

A ``.pt`` is large data, which travels by object key, never in a workflow payload; so
``sentinel weights add`` and ``sentinel models import`` put the file at its content-addressed
key (``weights/blobs/{sha256}.pt`` in the models bucket) with the S3 settings of the workers
(``SENTINEL_S3_*``, from the environment or mounted files), and hand the key and the digest
computed here to a workflow. That digest is what vouches for the bytes: every worker checks it
before loading them. Everything else happens in workflows. This is the only client module
allowed to import the storage layer (``.importlinter``).
"""

from __future__ import annotations

from pathlib import Path

from activities.contracts.evaluation import WeightsRef
from activities.contracts.weights import blob_key
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore, sha256_file

_ZIP_MAGIC = b"PK\x03\x04"


def check_weights_file(path: Path) -> None:
    """ValueError unless ``path`` is a non-empty PyTorch checkpoint (a torch zip archive).

    Checked by its first bytes only: nothing is unpickled on the client.
    """
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    with path.open("rb") as handle:
        head = handle.read(len(_ZIP_MAGIC))
    if head != _ZIP_MAGIC:
        raise ValueError(
            f"{path} is not a PyTorch checkpoint (expected a .pt written by torch.save, e.g. "
            "Ultralytics' best.pt)"
        )


def upload_weights(settings: Settings, path: Path) -> WeightsRef:
    """Upload ``path`` to its content-addressed key (skipped when already stored); its ref.

    Raises ValueError for a file that is not a checkpoint, ConfigurationError for missing S3
    credentials or bucket.
    """
    check_weights_file(path)
    digest = sha256_file(path)
    bucket, key = settings.models_bucket, blob_key(digest)
    store = ObjectStore.from_settings(settings)
    store.check_bucket(bucket)
    stored = store.stat(bucket, key)
    if stored is None or stored.sha256 != digest:
        store.put_file(bucket, key, path)
    return WeightsRef(bucket=bucket, key=key, sha256=digest)
