"""The production alias: an append-only history of moves, mirrored into ``production.json``.

Each move is ``aliases/history/{seq}.json``, created with If-None-Match, so two concurrent
moves cannot both take the same sequence number: the loser re-reads the history and tries
again (or gives up when it required production to still be a given version). Every move
carries a ``request_id``; a retried request finds its own entry and changes nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime

from activities.contracts.registry import AliasAction, AliasEvent
from activities.infra.errors import BadInputError, IntegrityError, NotFoundError
from activities.registry import layout
from activities.registry.core import POINTER_SYNC_ROUNDS, Registry, dump

log = logging.getLogger(__name__)

_ANY = object()
MAX_APPEND_ATTEMPTS = 100


class ProductionMovedError(BadInputError):
    """Production is no longer the version a change was decided against."""


def history(registry: Registry, model: str) -> list[AliasEvent]:
    """Every production move of ``model``, oldest first."""
    events = []
    for seq in registry.scan(model).history:
        event = registry.read(layout.history_key(model, seq), AliasEvent)
        if event is not None:
            events.append(event)
    return events


def sync_production(registry: Registry, model: str) -> int | None:
    """Mirror the newest history entry into ``production.json``; returns its version.

    Same convergence argument as :meth:`Registry.sync_latest`: write, list again, rewrite
    while a newer entry appeared.
    """
    written: int | None = None
    for _ in range(POINTER_SYNC_ROUNDS):
        scan = registry.scan(model)
        if not scan.history:
            return None
        if scan.history[-1] == written:
            break
        event = registry.production_event(model, scan)
        assert event is not None
        registry.store.put_bytes(
            registry.bucket,
            layout.production_key(model),
            dump(event),
            content_type="application/json",
        )
        written = event.seq
    return registry.production_version(model)


def _done_before(
    registry: Registry, model: str, events: list[AliasEvent], request_id: str
) -> AliasEvent | None:
    """The move ``request_id`` already made (production.json synced again), if any.

    A retried request finds its own entry here and changes nothing else.
    """
    mine = next((e for e in events if e.request_id == request_id), None)
    if mine is not None:
        sync_production(registry, model)
    return mine


def append(
    registry: Registry,
    model: str,
    *,
    version: int,
    action: AliasAction,
    reason: str,
    request_id: str,
    at: datetime,
    expect_current: object = _ANY,
) -> AliasEvent:
    """Move production to ``version`` (idempotent per ``request_id``); returns the entry.

    ``expect_current`` (a version or None) makes the move conditional: ProductionMovedError
    when production is something else at the moment of the move.
    """
    for _ in range(MAX_APPEND_ATTEMPTS):
        events = history(registry, model)
        if (mine := _done_before(registry, model, events, request_id)) is not None:
            return mine
        head = events[-1] if events else None
        current = head.version if head else None
        if expect_current is not _ANY and current != expect_current:
            expected = expect_current if isinstance(expect_current, int) else None
            raise ProductionMovedError(
                f"production of {model!r} is {layout.version_label(current, 'unset')}, not "
                f"{layout.version_label(expected, 'unset')} as when this "
                f"change was decided: refusing to move it to v{version}"
            )
        event = AliasEvent(
            seq=(head.seq + 1) if head else 1,
            version=version,
            previous_version=current,
            action=action,
            reason=reason,
            request_id=request_id,
            at=at,
        )
        key = layout.history_key(model, event.seq)
        try:
            registry.store.put_bytes(
                registry.bucket,
                key,
                dump(event),
                content_type="application/json",
                if_absent=True,
            )
        except FileExistsError:
            theirs = registry.read(key, AliasEvent)
            if theirs is None or theirs.request_id != request_id:
                continue  # someone else moved production first: look again
            event = theirs  # our own earlier write whose reply was lost
        sync_production(registry, model)
        return event
    raise IntegrityError(f"could not append to the alias history of {model!r}: too much contention")


def promote(
    registry: Registry, model: str, version: int, *, reason: str, request_id: str, at: datetime
) -> tuple[int | None, AliasEvent | None]:
    """Point production at an existing ``version``: ``(previous, event or None if no-op)``."""
    registry.metadata(model, version)  # NotFoundError for a version that does not exist
    events = history(registry, model)
    if (mine := _done_before(registry, model, events, request_id)) is not None:
        return mine.previous_version, mine
    current = events[-1].version if events else None
    if current == version:
        sync_production(registry, model)
        return current, None
    event = append(
        registry,
        model,
        version=version,
        action="promote",
        reason=reason,
        request_id=request_id,
        at=at,
    )
    return event.previous_version, event


def rollback_target(events: list[AliasEvent]) -> int:
    """The version that production replaced when its current version was last promoted."""
    if not events:
        raise NotFoundError("no production version to roll back from")
    current = events[-1].version
    for event in reversed(events):
        if event.version == current and event.action in ("publish", "promote"):
            if event.previous_version is None:
                break
            return event.previous_version
    raise NotFoundError(f"production v{current} has no earlier promoted version to roll back to")


def rollback(
    registry: Registry, model: str, *, reason: str, request_id: str, at: datetime
) -> AliasEvent:
    """Move production back to the version its current one replaced (recorded as a move)."""
    for _ in range(MAX_APPEND_ATTEMPTS):
        events = history(registry, model)
        if (mine := _done_before(registry, model, events, request_id)) is not None:
            return mine
        try:
            target = rollback_target(events)
        except NotFoundError as exc:
            raise NotFoundError(f"cannot roll back {model!r}: {exc}") from None
        try:
            return append(
                registry,
                model,
                version=target,
                action="rollback",
                reason=reason,
                request_id=request_id,
                at=at,
                expect_current=events[-1].version,
            )
        except ProductionMovedError:
            log.info("production of %s moved during rollback; deciding again", model)
    raise IntegrityError(f"could not roll back {model!r}: too much contention")
