"""``python -m workers.dev``: the embedded stack on loopback, in one command.

Starts the real Temporal dev server (Web UI on, SQLite file under ``--state-dir`` so workflow
state survives a restart), moto's S3 server with the buckets created (its objects kept under
``--state-dir`` too, so datasets, checkpoints and models survive a restart as well; see
:mod:`workers.dev.s3_store`), a real MLflow tracking server (SQLite under ``--state-dir``,
artifacts in the S3 server; ``--no-mlflow`` to skip it) and CPU + GPU workers in this process.
Ctrl-C stops everything in order. ``--demo`` runs the demo job and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from workers.dev.mlflow_server import ARTIFACTS_BUCKET, MlflowServer
from workers.dev.stack import S3Server, ServiceError, TemporalDevServer

log = logging.getLogger("sentinel.dev")

# moto accepts any credentials; these only keep the settings class satisfied.
DEV_ACCESS_KEY = "sentinel-dev"
DEV_SECRET_KEY = "sentinel-dev-secret"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m workers.dev",
        description="Run the embedded stack: Temporal dev server + Web UI, S3 (moto), MLflow "
        "tracking server + UI, workers.",
    )
    parser.add_argument("--temporal-port", type=int, default=7233, help="Temporal gRPC port")
    parser.add_argument("--ui-port", type=int, default=8233, help="Temporal Web UI port")
    parser.add_argument("--s3-port", type=int, default=9000, help="S3 server port")
    parser.add_argument(
        "--mlflow-port", type=int, default=5000, help="MLflow tracking server and UI port"
    )
    parser.add_argument(
        "--no-mlflow",
        action="store_true",
        help="start no MLflow server (SENTINEL_MLFLOW_TRACKING_URI, when set, is used as is)",
    )
    parser.add_argument(
        "--state-dir", type=Path, default=Path(".state"), help="Temporal database, logs, cache"
    )
    parser.add_argument(
        "--s3-in-memory",
        action="store_true",
        help="keep S3 objects in memory only (gone after a stop; default: kept in STATE_DIR/s3)",
    )
    parser.add_argument("--demo", action="store_true", help="run the demo job, then stop")
    parser.add_argument(
        "--task",
        default="detect",
        choices=["detect", "segment", "pose", "obb", "classify"],
        help="the demo's task (detect: the whole loop with pre-annotation and the controller; "
        "the others: v1, then v2 gated against it on the grown dataset)",
    )
    return parser


def _export_env(temporal: TemporalDevServer, s3: S3Server, state_dir: Path) -> None:
    os.environ["SENTINEL_TEMPORAL_ADDRESS"] = temporal.address
    os.environ["SENTINEL_S3_ENDPOINT"] = s3.endpoint
    os.environ.setdefault("SENTINEL_S3_ACCESS_KEY", DEV_ACCESS_KEY)
    os.environ.setdefault("SENTINEL_S3_SECRET_KEY", DEV_SECRET_KEY)
    os.environ.setdefault("SENTINEL_CACHE_DIR", str((state_dir / "cache").resolve()))
    if "SENTINEL_SIGNING_KEY_FILE" not in os.environ:  # generated once, kept with the state
        from activities.infra.signing import ensure_key_file

        key_file = ensure_key_file((state_dir / "signing.keys").resolve())
        os.environ["SENTINEL_SIGNING_KEY_FILE"] = str(key_file)


def _quiet_ultralytics() -> None:
    # The demo shows our progress bars and tables; per-batch Ultralytics logs would bury them.
    os.environ.setdefault("YOLO_VERBOSE", "False")


def _where_state_lives(temporal: TemporalDevServer, s3: S3Server) -> None:
    print(f"Workflow history kept in {temporal.db_file.resolve()}")
    if s3.data_dir is None:
        print("S3 objects are in memory only (--s3-in-memory): gone when the stack stops")
    else:
        print(f"S3 objects kept in {s3.data_dir.resolve()} (restored at the next start)")


def _start_mlflow(args: argparse.Namespace, s3: S3Server, state_dir: Path) -> MlflowServer | None:
    """The stack's MLflow server, unless turned off or another tracking server is configured."""
    if args.no_mlflow or os.environ.get("SENTINEL_MLFLOW_TRACKING_URI"):
        return None
    from activities.infra.settings import Settings
    from activities.infra.storage import ObjectStore

    ObjectStore.from_settings(Settings()).ensure_bucket(ARTIFACTS_BUCKET)
    server = MlflowServer(
        state_dir / "mlflow",
        port=args.mlflow_port,
        s3_endpoint=s3.endpoint,
        access_key=os.environ["SENTINEL_S3_ACCESS_KEY"],
        secret_key=os.environ["SENTINEL_S3_SECRET_KEY"],
    )
    server.start()
    os.environ["SENTINEL_MLFLOW_TRACKING_URI"] = server.url
    return server


async def _run(args: argparse.Namespace, temporal: TemporalDevServer, s3: S3Server) -> int:
    from activities.infra.connection import connect
    from activities.infra.settings import Settings
    from activities.infra.storage import ObjectStore
    from activities.infra.yolo_env import bootstrap_offline
    from activities.tracking import Tracking
    from workers.factory import build_worker
    from workers.telemetry import start_metrics

    settings = Settings()
    store = ObjectStore.from_settings(settings)
    for bucket in settings.buckets:
        store.ensure_bucket(bucket)
    bootstrap_offline()
    telemetry = start_metrics(settings)
    client = await connect(settings, runtime=telemetry.runtime if telemetry else None)
    workers = [build_worker(client, settings, kind, store=store) for kind in ("cpu", "gpu")]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    mlflow_url = settings.mlflow_tracking_uri
    print(f"Temporal UI   {temporal.ui_url}")
    print(f"MLflow UI     {mlflow_url or 'off'}")
    print(f"Temporal      {settings.temporal_address}  (namespace {settings.temporal_namespace})")
    print(f"S3            http://{settings.s3_endpoint}  buckets {', '.join(settings.buckets)}")
    _where_state_lives(temporal, s3)
    if telemetry:
        print(f"Metrics       http://127.0.0.1:{telemetry.port}/metrics")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    code = 0
    try:
        if args.demo:
            from workers.dev.demo import run_demo
            from workers.dev.demo_tasks import run_task_demo

            job = (
                run_demo(
                    client,
                    settings,
                    store,
                    temporal.ui_url,
                    report_dir=args.state_dir / "reports",
                    mlflow_url=mlflow_url,
                )
                if args.task == "detect"
                else run_task_demo(client, settings, store, args.task, temporal.ui_url)
            )
            demo = asyncio.create_task(job)
            waiter = asyncio.create_task(stop.wait())
            await asyncio.wait([demo, waiter], return_when=asyncio.FIRST_COMPLETED)
            if demo.done():
                code = demo.result()
            else:
                demo.cancel()
                code = 130
            waiter.cancel()
        else:
            print("Workers running. Ctrl-C to stop.", flush=True)
            await stop.wait()
    finally:
        print("Stopping workers...")
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(Tracking.from_settings(settings).close, 30.0)
        if telemetry:
            telemetry.close()
    return code


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    state_dir: Path = args.state_dir
    temporal = TemporalDevServer(
        state_dir / "temporal", port=args.temporal_port, ui_port=args.ui_port
    )
    s3_dir = state_dir / "s3"
    s3 = S3Server(
        s3_dir, port=args.s3_port, data_dir=None if args.s3_in_memory else s3_dir / "objects"
    )
    mlflow: MlflowServer | None = None
    try:
        temporal.start()
        s3.start()
        _export_env(temporal, s3, state_dir)
        mlflow = _start_mlflow(args, s3, state_dir)
        if args.demo:
            _quiet_ultralytics()
        return asyncio.run(_run(args, temporal, s3))
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C before the workers were up: still stop cleanly
        print("interrupted during start-up", file=sys.stderr)
        return 130
    except Exception as exc:  # one line for people; the traceback is in the log level DEBUG
        log.debug("stack failed", exc_info=True)
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if mlflow is not None:
            mlflow.stop()
        s3.stop()
        temporal.stop()


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip finalization: the SDK's native threads can crash it (see exit_process).
    os._exit(code)
