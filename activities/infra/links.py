"""Time-limited download links (S3 presigned GET URLs) for people without S3 credentials.

The registry hands these to the client side (``sentinel models pull`` / ``report``), which
needs only Temporal access; the client verifies every download against the digest recorded
in the version's metadata. Links are signed for ``SENTINEL_S3_PUBLIC_URL`` when set (an S3
address reachable from users' machines; workers may use an internal one), else for the
endpoint the workers use.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from minio import Minio

from activities.infra.errors import ConfigurationError
from activities.infra.retries import call_with_retries
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore

DEFAULT_REGION = "us-east-1"
"""Region signed for when none is configured (S3's default; MinIO and moto accept it)."""


class LinkSigner:
    """Signs GET links with the workers' S3 credentials, for the public or internal endpoint."""

    def __init__(self, client: Minio, endpoint: str) -> None:
        self.client = client
        self.endpoint = endpoint

    @classmethod
    def from_settings(cls, settings: Settings, store: ObjectStore) -> LinkSigner:
        """A signer for ``settings.s3_public_url``, or for ``store``'s own endpoint."""
        public = settings.s3_public_url
        if not public:
            return cls(store.client, store.endpoint)
        parts = urlsplit(public)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/"):
            raise ConfigurationError(
                f"SENTINEL_S3_PUBLIC_URL must look like https://s3.example.com[:port], got "
                f"{public!r}"
            )
        if settings.s3_access_key is None or settings.s3_secret_key is None:
            raise ConfigurationError("S3 credentials missing: cannot sign download links")
        client = Minio(
            parts.netloc,
            access_key=settings.s3_access_key.get_secret_value(),
            secret_key=settings.s3_secret_key.get_secret_value(),
            secure=parts.scheme == "https",
            # Known region: signing needs no request to the (maybe unreachable) public host.
            region=settings.s3_region or DEFAULT_REGION,
        )
        return cls(client, parts.netloc)

    def link(self, bucket: str, key: str, expires: timedelta) -> str:
        """A URL that GETs ``bucket/key`` until ``expires`` from now."""
        return call_with_retries(
            lambda: self.client.presigned_get_object(bucket, key, expires=expires),
            what=f"sign a link to {key}",
            bucket=bucket,
            endpoint=self.endpoint,
            max_attempts=3,
            backoff_seconds=0.2,
        )
