"""A trial's MLflow writes that outlast an MLflow outage: buffered epochs, patient start and end.

Why: the MLflow client retries a failed request for a while (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``,
``..._BACKOFF_FACTOR``; about two minutes by default) and then raises. A trial that let that error
escape died, and its retry from the last checkpoint died the same way while the server stayed down:
an outage longer than the client's budget turned into FAILED trials. Here:

- per epoch, `EpochMetricLog` logs the epoch's metrics; if MLflow cannot take them they stay
  *pending* (a warning says so), training goes on, and the next epoch tries again, oldest first;
- the pending epochs travel in every checkpoint's ``sweep_meta.json`` (``pending_metrics``), so a
  trial that dies, or is restored after the driver died, replays them from its checkpoint;
- steps MLflow already has are never sent again, and a re-sent epoch keeps the timestamp of its
  first send, so a batch that reached the store although the client saw an error (the server died
  before it answered) is dropped by MLflow as identical (no duplicate (run, key, step));
- at the trial's start (finding or creating its run) and at its end (the last pending epochs, the
  post-training metrics) `patient` keeps trying for ``--mlflow-wait`` seconds (the trial's
  `sweeps.trial.TrialContext.mlflow_wait`, default 600), then raises with the URI and what was not recorded — the trial fails cleanly and a resume replays
  it from the checkpoint.

Runs inside the Ray workers; MLflow is reached only through `sweeps.tracking.Tracker`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

log = logging.getLogger("sweeps")
RETRY_EVERY_S = 5.0
T = TypeVar("T")


def patient(call: Callable[[], T], what: str, uri: str, *, wait_s: float,
            sleep: Callable[[float], None] = time.sleep) -> T:
    """`call()`, tried again every few seconds until it succeeds or `wait_s` has passed."""
    deadline = time.monotonic() + wait_s
    warned = False
    while True:
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - any failure to reach the store is retried
            if time.monotonic() >= deadline:
                raise MlflowUnavailable(f"MLflow at {_redact(uri)} did not accept {what} within {wait_s:.0f} s "
                                        f"(--mlflow-wait): {type(exc).__name__}: {str(exc)[:500]}") from exc
            if not warned:
                log.warning("MLflow at %s did not accept %s (%s); trying again for up to %.0f s",
                            _redact(uri), what, type(exc).__name__, wait_s)
                warned = True
            sleep(min(RETRY_EVERY_S, max(0.0, deadline - time.monotonic())))


class MlflowUnavailable(RuntimeError):
    """MLflow stayed unreachable for longer than the trial waits; the checkpoint keeps the epochs."""


@dataclass
class EpochMetricLog:
    """The per-epoch metrics of one run, sent in step order, kept while MLflow cannot take them."""

    tracker: Any  # sweeps.tracking.Tracker
    run_id: str
    logged_through: int = 0  # the last step MLflow has for this run
    pending: list[tuple[int, dict[str, float], int]] = field(default_factory=list)  # (step, metrics, ms)
    _warned: bool = False

    @classmethod
    def from_meta(cls, tracker: Any, run_id: str, meta: dict[str, Any], logged_through: int) -> "EpochMetricLog":
        pending = [(int(e[0]), {k: float(v) for k, v in e[1].items()}, int(e[2]) if len(e) > 2 else _now_ms())
                   for e in meta.get("pending_metrics", [])]
        return cls(tracker, run_id, logged_through, [e for e in pending if e[0] > logged_through])

    def add(self, step: int, metrics: dict[str, float]) -> None:
        if step > self.logged_through and all(e[0] != step for e in self.pending):
            self.pending.append((step, dict(metrics), _now_ms()))

    def flush(self) -> bool:
        """Send what is pending, oldest first; False (and a warning) if MLflow did not take it all."""
        while self.pending:
            step, metrics, ms = self.pending[0]
            try:
                self.tracker.log_metrics(self.run_id, metrics, step=step, timestamp_ms=ms)
            except Exception as exc:  # noqa: BLE001 - kept, sent again with the next epoch
                if not self._warned:
                    log.warning("MLflow did not take the metrics of epoch %d of run %s (%s): kept, and "
                                "sent again with the next epoch or from the checkpoint", step, self.run_id,
                                type(exc).__name__)
                    self._warned = True
                return False
            self.pending.pop(0)
            self.logged_through = max(self.logged_through, step)
        if self._warned:
            log.warning("MLflow took the buffered metrics of run %s again (through epoch %d)",
                        self.run_id, self.logged_through)
            self._warned = False
        return True

    def flush_patiently(self, *, wait_s: float) -> None:
        """`flush` until everything is recorded, or raise `MlflowUnavailable` after `wait_s`."""
        if self.pending:
            steps = [e[0] for e in self.pending]
            patient(lambda: self.flush() or _raise(), f"the metrics of epochs {steps}", self.tracker.tracking_uri,
                    wait_s=wait_s)

    def meta(self) -> list[list[Any]]:
        """What goes into the checkpoint's ``sweep_meta.json``: the epochs MLflow does not have yet."""
        return [[s, m, ms] for s, m, ms in self.pending]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _raise() -> None:
    raise RuntimeError("metrics still pending")


def _redact(uri: str) -> str:
    from sweeps.preflight import redact_uri  # standard library only

    return redact_uri(uri)
