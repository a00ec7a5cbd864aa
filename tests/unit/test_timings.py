"""The timing record of an activity: spans on its thread, ``bg.`` spans from its threads."""

from __future__ import annotations

import contextvars
import threading
from typing import Any

from activities.infra import timings


def test_spans_outside_an_activity_record_nothing() -> None:
    with timings.span("anything"):
        pass
    timings.add("anything", 1.0)
    assert timings.current() is None


def test_spans_add_up_per_name_and_background_threads_are_named_apart() -> None:
    with timings.collecting("train", "run-spans", attempt=2) as record:
        for _ in range(3):
            with timings.span("heartbeat"):
                pass
        timings.add("upload", 0.25)
        context = contextvars.copy_context()  # as the checkpoint uploader's thread does
        worker = threading.Thread(target=context.run, args=(timings.add, "upload", 0.5))
        worker.start()
        worker.join()
    assert record.counts == {"heartbeat": 3, "upload": 1, "bg.upload": 1}
    assert record.seconds["upload"] == 0.25
    assert record.seconds["bg.upload"] == 0.5
    assert record.wall >= record.seconds["heartbeat"] >= 0.0
    assert timings.current() is None  # closed with the block
    kept = timings.recent("run-spans")
    assert [(r.stage, r.attempt) for r in kept] == [("train", 2)]
    line = kept[0].line()
    assert line.startswith("timings stage=train run=run-spans attempt=2 wall=")
    assert "bg.upload=0.500/1" in line and "upload=0.250/1" in line


def test_a_timed_store_times_transfers_and_passes_everything_through() -> None:
    class Store:
        bucket = "b"

        def put_file(self, bucket: str, key: str, path: Any) -> str:
            return f"{bucket}/{key}"

        def delete(self, bucket: str, key: str) -> str:
            return "deleted"

    timed = timings.timed_store(Store(), "checkpoint_upload")
    with timings.collecting("train", "run-store") as record:
        assert timed.put_file("runs", "k", None) == "runs/k"
        assert timed.delete("runs", "k") == "deleted"
        assert timed.bucket == "b"
    assert record.counts == {"checkpoint_upload": 1}
