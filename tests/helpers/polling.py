"""``eventually``: poll a condition until it holds, instead of hand-written polling loops."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")


@overload
async def eventually(
    check: Callable[[], Awaitable[T]],
    *,
    timeout: float = ...,
    interval: float = ...,
    ignore: type[BaseException] | tuple[type[BaseException], ...] = ...,
    message: str | None = ...,
) -> T: ...
@overload
async def eventually(
    check: Callable[[], T],
    *,
    timeout: float = ...,
    interval: float = ...,
    ignore: type[BaseException] | tuple[type[BaseException], ...] = ...,
    message: str | None = ...,
) -> T: ...
async def eventually(
    check: Callable[[], object],
    *,
    timeout: float = 30.0,
    interval: float = 0.1,
    ignore: type[BaseException] | tuple[type[BaseException], ...] = (),
    message: str | None = None,
) -> object:
    """Call ``check`` until it returns a truthy value, and return that value.

    ``check`` is a plain function or a coroutine function (it is called again each time).
    Exceptions of the types in ``ignore`` count as "not yet" (e.g. a workflow that no worker
    can answer a query for yet); any other exception propagates at once. After ``timeout``
    seconds this raises ``AssertionError`` with ``message`` and the last value or error seen.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            value = check()
            if inspect.isawaitable(value):
                value = await value
        except ignore as exc:
            last: object = exc
        else:
            if value:
                return value
            last = value
        if loop.time() >= deadline:
            what = message or "condition"
            raise AssertionError(f"{what}: not met within {timeout:g}s (last: {last!r})")
        await asyncio.sleep(interval)
