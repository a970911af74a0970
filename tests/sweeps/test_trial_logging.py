"""Buffered per-epoch metrics and patient MLflow calls of a trial (sweeps.trial_logging)."""

from __future__ import annotations

import pytest

from sweeps.trial_logging import EpochMetricLog, MlflowUnavailable, patient


class FlakyTracker:
    """Records log_metrics calls; raises while `down`."""

    tracking_uri = "http://alice:s3cret@127.0.0.1:5000"

    def __init__(self):
        self.down = False
        self.logged: list[tuple[int, dict]] = []
        self.stamps: list[tuple[int, int]] = []

    def log_metrics(self, run_id, metrics, *, step, timestamp_ms=None):
        if self.down:
            raise ConnectionError("connection refused")
        self.logged.append((step, dict(metrics)))
        self.stamps.append((step, timestamp_ms))


def test_epochs_are_kept_while_mlflow_is_down_and_sent_in_order_once_it_is_back():
    t = FlakyTracker()
    log = EpochMetricLog(t, "run")
    log.add(1, {"m": 1.0})
    assert log.flush() and t.logged == [(1, {"m": 1.0})] and log.logged_through == 1
    t.down = True
    log.add(2, {"m": 2.0})
    assert not log.flush()
    log.add(3, {"m": 3.0})
    assert not log.flush() and [e[0] for e in log.pending] == [2, 3]
    first_stamp = log.pending[0][2]
    assert [e[:2] for e in log.meta()] == [[2, {"m": 2.0}], [3, {"m": 3.0}]]  # what the checkpoint carries
    t.down = False
    log.add(3, {"m": 3.0})  # the same epoch again is not queued twice
    assert log.flush() and [s for s, _ in t.logged] == [1, 2, 3] and log.pending == []
    assert dict(t.stamps)[2] == first_stamp  # a re-send keeps its first timestamp (idempotent in MLflow)


def test_a_resumed_attempt_replays_the_checkpoint_s_pending_epochs_but_never_a_step_mlflow_has():
    t = FlakyTracker()
    meta = {"pending_metrics": [[4, {"m": 4.0}, 1000], [5, {"m": 5.0}, 2000], [6, {"m": 6.0}, 3000]]}
    log = EpochMetricLog.from_meta(t, "run", meta, logged_through=4)  # step 4 reached MLflow after all
    assert [e[0] for e in log.pending] == [5, 6]
    log.add(4, {"m": 4.0})  # an epoch re-trained after the interrupt is not sent again
    assert log.flush() and [s for s, _ in t.logged] == [5, 6] and t.stamps == [(5, 2000), (6, 3000)]


def test_patient_retries_until_the_call_succeeds_or_the_wait_is_over():
    calls, slept = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("refused")
        return "ok"

    assert patient(flaky, "x", "http://h", wait_s=60, sleep=slept.append) == "ok" and len(calls) == 3
    t = FlakyTracker()
    t.down = True
    log = EpochMetricLog(t, "run")
    log.add(1, {"m": 1.0})
    with pytest.raises(MlflowUnavailable, match=r"MLflow at http://alice:\*\*\*@127.0.0.1:5000 did not accept "
                                                r"the metrics of epochs \[1\] within 0 s") as info:
        log.flush_patiently(wait_s=0)
    assert "s3cret" not in str(info.value)
