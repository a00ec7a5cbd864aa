"""Experiment tracking without a server: what is sent (names, values) and how the sender
behaves when MLflow is unreachable (a real MLflow client against a closed port)."""

from __future__ import annotations

import threading
import time

from prometheus_client import REGISTRY

from activities.contracts.training import Hyperparameters
from activities.tracking.records import (
    csv_epochs,
    evaluation_metrics,
    hyperparameter_params,
    metric_name,
    numeric,
)
from activities.tracking.session import RunIdentity, Session
from activities.tracking.sink import Record, RunStatus, Sink
from activities.tracking.tracker import RunTracker
from tests.helpers.factories import evaluation
from workers.dev.stack import free_port

RESULTS_CSV = """epoch,time,train/box_loss,metrics/mAP50(B),metrics/mAP50-95(B),lr/pg0
1,2.5,3.1,0.10,0.05,0.001
2,5.0,2.9,0.20,nan,0.002
"""


def test_metric_names_are_ultralytics_names_without_what_mlflow_refuses() -> None:
    assert metric_name("metrics/mAP50-95(B)") == "metrics/mAP50-95B"
    assert metric_name("val/box_loss") == "val/box_loss"
    assert metric_name("test/AP50-95/traffic light?") == "test/AP50-95/traffic light_"


def test_numeric_keeps_finite_numbers_only() -> None:
    values = {"a": 1, "b": "2.5", "c": float("nan"), "d": "x", "e": None}
    assert numeric(values, prefix="p/") == {"p/a": 1.0, "p/b": 2.5}


def test_results_csv_rows_become_epochs_with_the_live_metric_names() -> None:
    rows = csv_epochs(RESULTS_CSV)
    assert set(rows) == {1, 2}
    assert rows[1] == {
        "train/box_loss": 3.1,
        "metrics/mAP50B": 0.10,
        "metrics/mAP50-95B": 0.05,
        "lr/pg0": 0.001,
    }
    assert "metrics/mAP50-95B" not in rows[2]  # nan is not a value


def test_parameters_name_every_hyperparameter() -> None:
    params = hyperparameter_params(Hyperparameters(epochs=7, extra={"mosaic": 0.0}))
    assert params["epochs"] == "7" and params["extra.mosaic"] == "0.0"
    assert params["device"] == "None" and params["optimizer"] == "auto"


def test_evaluation_metrics_compare_candidate_and_champion() -> None:
    values = evaluation_metrics(evaluation(0.6, 0.5, 1))
    assert values["test/mAP50-95"] == 0.6 and values["champion/mAP50-95"] == 0.5
    assert {"ci/low", "ci/high", "ci/difference"} <= set(values)
    alone = evaluation_metrics(evaluation(0.6, None, None))
    assert "champion/mAP50-95" not in alone and "ci/low" not in alone


def test_status_line_is_silent_while_all_is_well() -> None:
    assert RunStatus(sent=12).line() is None
    line = RunStatus(waiting=2, sent=10, lost=1).line()
    assert line == "MLflow: 2 waiting, 1 lost after retries; 10 sent"


def _lost_total() -> float:
    return REGISTRY.get_sample_value("sentinel_tracking_records_total", {"outcome": "lost"}) or 0


def test_an_unreachable_server_never_blocks_and_what_was_lost_is_reported() -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    sink = Sink(lambda: Session(uri, "sentinel/", 2.0), retry_delays=(0.01, 0.01))
    tracker = RunTracker(sink, RunIdentity("m", "retrain-m", "run-down"))
    lost_before = _lost_total()
    slowest = 0.0
    for epoch in range(1, 21):
        started = time.perf_counter()
        tracker.epoch(epoch, {"train/box_loss": 1.0 / epoch})
        slowest = max(slowest, time.perf_counter() - started)
    tracker.params({"epochs": 20})
    assert slowest < 0.05, f"enqueueing took {slowest:.3f}s"
    assert sink.flush(60)
    status = tracker.status()
    assert (status.waiting, status.sent, status.lost) == (0, 0, 21)
    assert tracker.status_line() == "MLflow: 21 lost after retries; 0 sent"
    assert _lost_total() - lost_before == 21
    sink.close(1)


def test_a_full_queue_drops_instead_of_blocking_and_records_are_retried_in_order() -> None:
    gate = threading.Event()
    done: list[str] = []
    failures = {"b": 1}  # "b" fails once, then succeeds on its retry

    def operation(name: str) -> Record:
        def run(_session: object) -> None:
            gate.wait(10)
            if failures.get(name):
                failures[name] -= 1
                raise ConnectionError("flaky")
            done.append(name)

        return Record("run-q", name, run)

    sink = Sink(lambda: object(), capacity=3, retry_delays=(0.01,))  # type: ignore[arg-type, return-value]
    accepted = [sink.submit(operation(name)) for name in "abcde"]
    # One record is taken by the thread at once; three wait; the fifth finds the queue full.
    assert accepted.count(False) >= 1 and sink.status("run-q").dropped >= 1
    gate.set()
    assert sink.flush(10)
    assert done == [name for name, ok in zip("abcde", accepted, strict=True) if ok]
    status = sink.status("run-q")
    assert status.lost == 0 and status.sent == len(done)
    sink.close(1)
