"""The production alias: an append-only history of moves, mirrored into ``production.json``.

Each move is ``aliases/history/{seq}.json``, created with If-None-Match as ``seq`` = the newest
entry's + 1, so two concurrent moves cannot both follow the same entry: the loser reads the
history again. Every move states the production version it was decided against (the caller's
``expected_production``, or what the move read first) and is refused with
:class:`ProductionMovedError`, naming the current version, when production is something else:
aliases move only from what the caller saw, so two rollbacks at the same instant move back one
step, and a promote racing a publish leaves one consistent history. Every move carries a
``request_id``; a retried request finds its own entry and changes nothing.

A created entry is read back after :data:`READ_BACK_SETTLE_SECONDS` (a store that ignores
If-None-Match, as moto's server may under concurrent writes, lets a second writer overwrite
it: the overwritten writer sees that and decides again). ``production.json`` is derived data:
written after the entry, and repaired from the history (:func:`repair_production_mirror`) by
every registry activity when a crash between the two left it stale.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Final

from activities.contracts.registry import NO_PRODUCTION, AliasAction, AliasEvent, ExpectedProduction
from activities.infra.errors import BadInputError, IntegrityError, NotFoundError
from activities.registry import layout
from activities.registry.core import POINTER_SYNC_ROUNDS, Registry, Scan

log = logging.getLogger(__name__)


class _Unchecked:
    """Type of :data:`UNCHECKED`."""

    def __repr__(self) -> str:
        return "UNCHECKED"


UNCHECKED: Final = _Unchecked()
"""``expect_current`` of a move that was not decided against a production version."""

Expectation = int | None | _Unchecked
"""What a move requires production to be: a version, None (no production), or UNCHECKED."""

MAX_APPEND_ATTEMPTS = 100
READ_BACK_SETTLE_SECONDS = 0.2
"""Wait before reading a created history entry back (moves are rare: a human's pace)."""


class ProductionMovedError(BadInputError):
    """Production is no longer the version a change was decided against."""


def expectation_of(expected: ExpectedProduction | None) -> Expectation:
    """A request's ``expected_production`` as a move's expectation (None: UNCHECKED)."""
    if expected is None:
        return UNCHECKED
    return None if expected == NO_PRODUCTION else expected


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
            registry.encode(event),
            content_type="application/json",
        )
        written = event.seq
    return registry.production_version(model)


def repair_production_mirror(registry: Registry, model: str, scan: Scan | None = None) -> bool:
    """Rewrite ``production.json`` unless it holds the newest history entry; True if it did.

    A crash between appending a move and mirroring it leaves the mirror stale (or missing, or
    unreadable); the history is the truth, so the mirror is written again from it.
    """
    head = registry.production_event(model, scan)
    if head is None:
        return False
    try:
        mirrored = registry.read(layout.production_key(model), AliasEvent)
    except IntegrityError:
        mirrored = None  # unreadable or not ours: derived data, written again below
    if mirrored == head:
        return False
    log.warning(
        "production.json of %s shows %s, the alias history v%s (entry %s): repairing it",
        model,
        layout.version_label(mirrored.version if mirrored else None, "nothing"),
        head.version,
        head.seq,
    )
    sync_production(registry, model)
    return True


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


def _refuse_unless_expected(
    model: str, current: int | None, expected: Expectation, doing: str
) -> None:
    """ProductionMovedError (naming the current version) unless production is ``expected``."""
    if isinstance(expected, _Unchecked) or current == expected:
        return
    now = layout.version_label(current)
    raise ProductionMovedError(
        f"production of {model!r} is {now}, not {layout.version_label(expected)} as the "
        f"caller saw it: refusing to {doing}; look again and decide on {now}"
    )


def _created_as_ours(registry: Registry, key: str, request_id: str) -> AliasEvent | None:
    """The entry at ``key`` after the settle time, if it is still ours."""
    time.sleep(READ_BACK_SETTLE_SECONDS)
    stored = registry.read(key, AliasEvent)
    if stored is None or stored.request_id != request_id:
        log.warning("%s was overwritten: the store ignored If-None-Match", key)
        return None
    return stored


def append(
    registry: Registry,
    model: str,
    *,
    version: int,
    action: AliasAction,
    reason: str,
    request_id: str,
    at: datetime,
    expect_current: Expectation = UNCHECKED,
) -> AliasEvent:
    """Move production to ``version`` (idempotent per ``request_id``); returns the entry.

    ``expect_current`` (a version, None for no production, or UNCHECKED) makes the move
    conditional: ProductionMovedError when production is something else at the moment of
    the move.
    """
    for _ in range(MAX_APPEND_ATTEMPTS):
        events = history(registry, model)
        if (mine := _done_before(registry, model, events, request_id)) is not None:
            return mine
        head = events[-1] if events else None
        current = head.version if head else None
        doing = f"roll it back to v{version}" if action == "rollback" else f"promote v{version}"
        _refuse_unless_expected(model, current, expect_current, doing)
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
                registry.encode(event),
                content_type="application/json",
                if_absent=True,
            )
        except FileExistsError:
            theirs = registry.read(key, AliasEvent)
            if theirs is None or theirs.request_id != request_id:
                continue  # someone else moved production first: look again
            # our own earlier write whose reply was lost: confirmed below
        if (confirmed := _created_as_ours(registry, key, request_id)) is None:
            continue
        sync_production(registry, model)
        return confirmed
    raise IntegrityError(f"could not append to the alias history of {model!r}: too much contention")


def promote(
    registry: Registry,
    model: str,
    version: int,
    *,
    reason: str,
    request_id: str,
    at: datetime,
    expect_current: Expectation = UNCHECKED,
) -> tuple[int | None, AliasEvent | None]:
    """Point production at an existing ``version``: ``(previous, event or None if no-op)``.

    With ``expect_current``, only from that production version (ProductionMovedError naming
    the current one otherwise); promoting the version that already is production is a no-op.
    """
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
        expect_current=expect_current,
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
    registry: Registry,
    model: str,
    *,
    reason: str,
    request_id: str,
    at: datetime,
    expect_current: Expectation = UNCHECKED,
) -> AliasEvent:
    """Move production back one step: to the version its current one replaced (recorded).

    One step from ``expect_current`` (UNCHECKED: from the version read here first): when
    production moved meanwhile (another rollback at the same instant, a promote, a publish),
    ProductionMovedError names the current version and nothing moves.
    """
    events = history(registry, model)
    if (mine := _done_before(registry, model, events, request_id)) is not None:
        return mine
    current = events[-1].version if events else None
    if isinstance(expect_current, _Unchecked):
        expect_current = current
    _refuse_unless_expected(model, current, expect_current, "roll it back")
    try:
        target = rollback_target(events)
    except NotFoundError as exc:
        raise NotFoundError(f"cannot roll back {model!r}: {exc}") from None
    return append(
        registry,
        model,
        version=target,
        action="rollback",
        reason=reason,
        request_id=request_id,
        at=at,
        expect_current=expect_current,
    )
