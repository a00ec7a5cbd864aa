"""Run many small blocking calls (downloads) on a bounded thread pool, all or nothing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed


def run_bounded(
    calls: Sequence[Callable[[], object]],
    *,
    max_workers: int,
    on_done: Callable[[int], None] | None = None,
) -> None:
    """Run ``calls`` with at most ``max_workers`` at a time; ``on_done(n)`` after each.

    The first failure cancels the calls not started yet and is raised once the running ones
    have finished.
    """
    done = 0
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        futures = [pool.submit(call) for call in calls]
        try:
            for future in as_completed(futures):
                future.result()
                done += 1
                if on_done is not None:
                    on_done(done)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
