"""The training log's pieces that need no server: keys, lines, the in-memory cap, capture."""

from __future__ import annotations

import logging
import threading
from typing import Any

from activities.training import runlog
from activities.training.runlog import RunLog, attempt_of_key, epoch_line, log_key


class _Store:
    """Records uploads (the real store is exercised by the integration tests)."""

    def __init__(self) -> None:
        self.puts: list[tuple[str, bytes]] = []

    def put_bytes(self, bucket: str, key: str, data: bytes, **kwargs: Any) -> None:
        self.puts.append((key, data))


def test_keys_round_trip() -> None:
    key = log_key("runs/retrain-parts/", 3)
    assert key == "runs/retrain-parts/logs/attempt-3.log" and attempt_of_key(key) == 3
    assert attempt_of_key("runs/x/logs/attempt-x.log") is None
    assert attempt_of_key("runs/x/logs/notes.txt") is None


def test_epoch_line_shows_losses_and_metrics() -> None:
    line = epoch_line(3, 10, {"train/box_loss": 1.23456, "metrics/mAP50(B)": 0.5}, 12.34)
    assert line == "epoch 3/10  box_loss 1.235  mAP50 0.5  (12.3 s)"


def test_captures_only_its_own_threads_and_uploads_on_close() -> None:
    store = _Store()
    log = RunLog(store, "runs", "runs/r/", 2, upload_interval=3600).start()  # type: ignore[arg-type]
    logger = logging.getLogger("activities.training.test")
    logger.warning("from the attempt")
    other = threading.Thread(target=lambda: logger.warning("from another training"))
    other.start()
    other.join()
    log.write("epoch 1/1")
    log.close("finished")
    logger.warning("after the attempt")
    assert len(store.puts) == 1
    key, data = store.puts[0]
    text = data.decode()
    assert key == "runs/r/logs/attempt-2.log"
    assert "warning activities.training.test: from the attempt" in text
    assert "epoch 1/1" in text and text.rstrip().endswith("finished")
    assert "another training" not in text and "after the attempt" not in text
    log.close()  # idempotent: nothing new, no second upload
    assert len(store.puts) == 1


def test_cap_keeps_the_head_and_the_newest_lines(monkeypatch: Any) -> None:
    monkeypatch.setattr(runlog, "MAX_LOG_BYTES", 4000)
    monkeypatch.setattr(runlog, "KEEP_HEAD_BYTES", 500)
    log = RunLog(_Store(), "runs", "runs/r/", 1)  # type: ignore[arg-type]
    for n in range(200):
        log.write(f"line {n:04d} " + "x" * 40)
    text = log.text().decode()
    assert "line 0000" in text and "line 0199" in text and "bytes of log dropped" in text
    assert len(text) < 4000
