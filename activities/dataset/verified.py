"""Which images of a source prefix are verified: the one rule of assembly and the controller.

An image is verified when its source does not say otherwise (COCO ``verified: false`` flags)
and, if a verified list exists (``{prefix}/verified.jsonl``, or the request's
``verified_key``, which must then exist), the list names it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from activities.dataset.formats import Candidate
from activities.infra.errors import BadInputError, NotFoundError
from activities.infra.heartbeat import Progress, no_progress
from activities.infra.storage import LIST_PAGE, ObjectStore

VERIFIED_LIST = "verified.jsonl"


@dataclass(frozen=True, slots=True)
class Listed:
    """One listed source object, kept for the whole assembly: its key is the dict key (relative
    to the prefix), so the listing holds each key once."""

    etag: str
    size: int


def list_source(
    store: ObjectStore,
    bucket: str,
    prefix: str,
    progress: Progress = no_progress,
    *,
    page_size: int = LIST_PAGE,
) -> dict[str, Listed]:
    """Every object under ``prefix/`` by its key relative to ``prefix``.

    The listing is paged (:meth:`ObjectStore.list`); ``progress("listed", n, 0)`` is called
    after every page, so a listing of hundreds of thousands of objects heartbeats.
    """
    start = len(prefix) + 1
    objects: dict[str, Listed] = {}
    for info in store.list(bucket, f"{prefix}/", page_size=page_size):
        objects[info.key[start:]] = Listed(info.etag, info.size)
        if len(objects) % page_size == 0:
            progress("listed", len(objects), 0)
    return objects


def parse_verified(data: bytes, where: str, prefix: str) -> set[str]:
    """Keys (relative to ``prefix``) in a verified list.

    One image per line: a JSON object (``{"image": ...}``, or ``key``/``file_name``/``path``;
    ``"verified": false`` excludes it), a JSON string, or a bare key. Keys may be relative to
    the prefix or full object keys.
    """
    keys: set[str] = set()
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        text = line.strip()
        if not text:
            continue
        item: object = text
        if text[0] in '{"':
            try:
                item = json.loads(text)
            except json.JSONDecodeError:
                raise BadInputError(f"{where} line {number} is not valid JSON") from None
        if isinstance(item, dict):
            if item.get("verified", True) is False:
                continue
            item = next((item[f] for f in ("image", "key", "file_name", "path") if f in item), None)
        if not isinstance(item, str) or not item:
            raise BadInputError(f"{where} line {number} names no image key")
        keys.add(item.removeprefix("./").removeprefix(f"{prefix}/"))
    return keys


@dataclass(frozen=True)
class Verified:
    """The verified candidates of a source, and where the verified list was looked for."""

    kept: list[Candidate]
    unverified: int
    list_key: str


def verified_candidates(
    store: ObjectStore,
    bucket: str,
    prefix: str,
    candidates: Iterable[Candidate],
    verified_key: str | None = None,
    *,
    max_bytes: int | None = None,
) -> Verified:
    """The ``candidates`` that count as verified (see the module), in their order.

    ``verified_key`` names the verified list explicitly (NotFoundError when it does not
    exist); without it the default ``{prefix}/verified.jsonl`` applies when present. A list
    over ``max_bytes`` is an ObjectTooLargeError (it is read whole).
    """
    list_key = verified_key or f"{prefix}/{VERIFIED_LIST}"
    try:
        data = store.get_bytes(bucket, list_key, max_bytes=max_bytes)
        listed: set[str] | None = parse_verified(data, f"{bucket}/{list_key}", prefix)
    except NotFoundError:
        if verified_key is not None:
            raise NotFoundError(f"verified list {bucket}/{list_key} does not exist") from None
        listed = None
    every = list(candidates)
    kept = [
        c for c in every if c.source_verified is not False and (listed is None or c.rel in listed)
    ]
    return Verified(kept, unverified=len(every) - len(kept), list_key=list_key)
