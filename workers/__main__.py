"""``python -m workers``: run Sentinel Training workers until SIGTERM/SIGINT.

On SIGTERM the workers stop polling and give running activities up to
``SENTINEL_GRACEFUL_SHUTDOWN_SECONDS`` to finish; training checkpoints its epoch and hands
over to another worker through its heartbeat details.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from activities.infra.connection import TemporalUnavailableError, connect
from activities.infra.errors import ConfigurationError, SentinelError
from activities.infra.settings import Settings
from activities.infra.storage import ObjectStore
from activities.tracking import Tracking
from workers.wiring import parse_queues

log = logging.getLogger("sentinel.workers")
EXIT_CONFIGURATION = 2  # the settings are wrong (exit 1: something is unreachable or broken)

TRACKING_FLUSH_SECONDS = 10.0
"""On shutdown, how long MLflow records still waiting may take to be sent."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m workers",
        description="Run Sentinel Training workers (configuration: SENTINEL_* environment).",
    )
    parser.add_argument(
        "--queues",
        default=None,
        help="queues to serve: cpu, gpu or cpu,gpu (default: SENTINEL_WORKER_QUEUES or cpu,gpu)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="check that Temporal and S3 are reachable, the buckets exist and the default base "
        "is readable, then exit 0 (ready), 1 (unreachable) or 2 (a setting or bucket is wrong)",
    )
    return parser


async def check(settings: Settings) -> None:
    """Raise a clear error unless Temporal and S3 (with every bucket) are reachable,
    ``SENTINEL_DEFAULT_BASE`` (when set) names a base and the signing keys are readable."""
    from activities.infra.signing import keyring
    from activities.training.base_model import default_base

    default_base(settings)
    keyring(settings)
    await connect(settings)
    store = ObjectStore.from_settings(settings, max_attempts=2)
    for bucket in settings.buckets:
        store.check_bucket(bucket)


def preflight(settings: Settings) -> None:
    """Refuse a wrong security configuration at once, before any connection: TLS settings
    that would send credentials in clear text, a webhook that is not HTTPS or not signed
    (:class:`ConfigurationError`, one line naming the setting)."""
    from activities.infra.connection import tls_config
    from activities.notify.webhook import target_from_settings

    tls_config(settings)
    target_from_settings(settings)


async def serve(settings: Settings, queues: str) -> None:
    """Run one worker per queue kind until a termination signal."""
    from activities.infra.signing import keyring
    from activities.infra.yolo_env import bootstrap_offline
    from workers.factory import build_worker
    from workers.telemetry import RetrainWatch, start_metrics

    keyring(settings)  # a worker without its signing keys refuses to start (one line, exit 2)
    bootstrap_offline()
    kinds = parse_queues(queues)
    telemetry = start_metrics(settings)  # before connecting: the client records SDK metrics
    client = await connect(settings, runtime=telemetry.runtime if telemetry else None)
    store = ObjectStore.from_settings(settings)
    workers = [build_worker(client, settings, kind, store=store) for kind in kinds]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runs = [asyncio.create_task(w.run()) for w in workers]
    # CPU workers run the workflows: they sample them for the metrics.
    watch = RetrainWatch(client) if telemetry and "cpu" in kinds else None
    watching = asyncio.create_task(watch.run()) if watch else None
    log.info("serving %s", ", ".join(f"{w.task_queue}" for w in workers))
    await asyncio.wait(
        [*runs, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
    )
    log.info("shutting down (graceful for %.0fs)", settings.graceful_shutdown_seconds)
    if watching:
        watching.cancel()
    await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
    # What MLflow has not received yet gets a few seconds; the rest is logged as not sent.
    await asyncio.to_thread(Tracking.from_settings(settings).close, TRACKING_FLUSH_SECONDS)
    if telemetry:
        telemetry.close()
    for task in runs:
        if task.done() and (error := task.exception()) is not None:
            raise error


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = Settings()
        preflight(settings)
        if args.check:
            asyncio.run(check(settings))
            print("ok: Temporal and S3 reachable, buckets present")
            return 0
        asyncio.run(serve(settings, args.queues or settings.worker_queues))
        return 0
    except ConfigurationError as exc:  # e.g. an API key without TLS: fix the settings
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIGURATION
    except (TemporalUnavailableError, SentinelError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    from activities.infra.connection import exit_process

    exit_process(main())
