"""Driver-side MLflow statuses of the child runs: Tune callbacks and the passes after ``fit``.

Why a module of its own: a trial cannot close its own MLflow run (ASHA stops it with
``SystemExit`` inside ``tune.report``), so every final status is set here, in the driver —
`StatusCallback` as trials end, `_reconcile` after a *complete* ``fit``, `_kill_stage` /
`_kill_keys` for leftovers (KILLED). `StateBackupCallback` snapshots Tune's state files after
each step (see `sweeps.resume_state`); `ConsoleCallback` prints the trial-event lines of
`sweeps.console`. Bookkeeping errors are logged, never raised.

Tune pickles both callbacks into ``tuner.pkl``; `sweeps.tune_runner` re-exports them under
their old path so that sweeps interrupted before the split still restore.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from ray import tune

from sweeps import interrupts
from sweeps import objective as obj
from sweeps.config import TrackingTarget
from sweeps.resume_state import StateBackup
from sweeps.tracking import TERMINAL_STATUSES, Tracker, flatten_params
from sweeps.trainable import TIMEOUT_TAG

log = logging.getLogger("sweeps")


def _trial_key(trial: Any) -> str:
    run = trial.config.get("_run") if isinstance(trial.config, dict) else None
    return run["key"] if run else trial.trial_id


def _error_text(trial: Any) -> str:
    path = getattr(trial, "error_file", None)
    try:
        if path and os.path.exists(path):
            with open(path) as f:
                text = f.read()
            return text[-4000:]
    except OSError:
        pass
    return "trial failed (no error file)"


class StatusCallback(tune.Callback):
    """Sets every child run's final status from the driver, as trials end.

    FINISHED (with ``stop_reason``/``stopped_early`` tags; an ASHA-stopped trial is FINISHED with
    ``stopped_early=true, stop_reason=scheduler``) or FAILED with the error text in the ``error``
    tag. Errors here are logged, never raised: bookkeeping must not kill the sweep. (No
    ``on_experiment_end`` pass: after Ctrl-C Tune marks interrupted trials TERMINATED there;
    `_reconcile` does that pass after a *complete* ``fit`` instead.)
    """

    def __init__(self, target: TrackingTarget, max_epochs: int) -> None:
        self.target = target
        self.max_epochs = max_epochs
        self.tracker = Tracker(target.tracking_uri)

    def setup(self, **info: Any) -> None:
        interrupts.watch_stop_signals()  # Tune's handler is installed by now

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        if interrupts.stopping():
            # Tune is stopping this trial because the driver got Ctrl-C, not because it ended: its
            # run stays open (the parent's clean-up marks it KILLED) and a re-run resumes it.
            log.info("trial %s stopped by the interrupt; its run is left for the resume", trial.trial_id)
            return
        self._finish(trial, error=None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, error=_error_text(trial))

    def _finish(self, trial: Any, *, error: str | None) -> None:
        try:
            _finish_trial(self.tracker, self.target, trial, error=error,
                          max_epochs=self.max_epochs)
        except Exception as exc:  # noqa: BLE001 - reconciled again after fit
            log.warning("could not set the MLflow status of trial %s: %s", trial.trial_id, exc)


class ConsoleCallback(tune.Callback):
    """The console's trial-event lines (`sweeps.console.TrialConsole`), printed as Tune reports them.

    Driver-side, like the other callbacks; a formatting error is logged, never raised.
    """

    def __init__(self, console: Any) -> None:
        self.console = console

    def _call(self, name: str, *args: Any) -> None:
        try:
            getattr(self.console, name)(*args)
        except Exception as exc:  # noqa: BLE001 - the console must not end the sweep
            log.warning("console line %s failed: %s", name, exc)

    def setup(self, **info: Any) -> None:
        self._call("stage_started")

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._call("trial_started", trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self._call("trial_result", trial, result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._call("trial_completed", trial)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._call("trial_recovered", trial, _error_text(trial))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._call("trial_failed", trial, _error_text(trial))


class StateBackupCallback(tune.Callback):
    """Snapshots the experiment's state files after Tune steps (see `sweeps.resume_state`).

    A failure to snapshot is logged, never raised.
    """

    def __init__(self, experiment_dir: str) -> None:
        self.backup = StateBackup(os.path.abspath(experiment_dir))

    def _run(self) -> None:
        try:
            self.backup()
        except Exception as exc:  # noqa: BLE001 - bookkeeping must not end the sweep
            log.warning("could not snapshot the Tune state of %s: %s",
                        self.backup.experiment_dir, exc)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._run()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._run()


def _reconcile(tracker: Tracker, target: TrackingTarget, grid: Any, max_epochs: int) -> None:
    """After a complete fit: give every child still open the status its trial ended with.

    Covers trials whose callback never ran (the driver died between a trial's end and the
    callback, then the experiment was restored with that trial already TERMINATED).
    """
    for res in grid:
        config = res.config or {}
        key = config["_run"]["key"] if "_run" in config else (res.metrics or {}).get("trial_id")
        if not key:
            continue
        run = tracker.find_child(target.experiment_id, target.parent_run_id, key)
        if run is None or run.info.status in TERMINAL_STATUSES:
            continue
        if res.error is not None:
            tracker.finish(run.info.run_id, "FAILED",
                           tags={"error": _with_timeout_reason(run, str(res.error)[-4000:]),
                                 "stopped_early": "false"})
        else:
            reason = obj.stop_reason(res.metrics or {}, max_epochs)
            tracker.finish(run.info.run_id, "FINISHED", tags={
                "stop_reason": reason, "stopped_early": str(reason != "max_epochs").lower()})


def _finish_trial(tracker: Tracker, target: TrackingTarget, trial: Any, *, error: str | None,
                  max_epochs: int) -> None:
    key = _trial_key(trial)
    run = tracker.find_child(target.experiment_id, target.parent_run_id, key)
    if run is None:
        if error is None:
            return
        # The trial failed before it could open its run: record it, so every trial has a child.
        spec = trial.config.get("_run") or {"name": "", "tags": {}, "config": trial.config}
        run_id, _ = tracker.child_run(
            experiment_id=target.experiment_id, parent_run_id=target.parent_run_id, run_key=key,
            run_name=spec["name"] or f"{target.tags.get('sweep_name', 'run')}-{key}",
            tags={**target.tags, "stage": spec["tags"].get("stage", "search"),
                  "trial_id": trial.trial_id, **spec["tags"]},
            params=flatten_params(spec["config"]))
    else:
        run_id = run.info.run_id
    if error is not None:
        error = _with_timeout_reason(run, error)
        tracker.finish(run_id, "FAILED", tags={"error": error, "stopped_early": "false"})
        return
    reason = obj.stop_reason(trial.last_result, max_epochs)
    tracker.finish(run_id, "FINISHED", tags={"stop_reason": reason,
                                             "stopped_early": str(reason != "max_epochs").lower()})


def _with_timeout_reason(run: Any, error: str) -> str:
    """A worker the trial-timeout watchdog ended dies like any other: say first why it died."""
    reason = run.data.tags.get(TIMEOUT_TAG) if run is not None else None
    died = any(s in error for s in ("ActorDiedError", "RayActorError", "actor died", "ActorUnavailable"))
    return f"{reason}\n{error}" if reason and died else error


def _kill_keys(tracker: Tracker, target: TrackingTarget, keys: set[str], reason: str) -> None:
    for run in tracker.children(target.experiment_id, target.parent_run_id):
        if run.data.tags.get("run_key") in keys and run.info.status not in TERMINAL_STATUSES:
            tracker.finish(run.info.run_id, "KILLED", tags={"killed_reason": reason})


def _kill_stage(tracker: Tracker, target: TrackingTarget, stage: str) -> None:
    for run in tracker.children(target.experiment_id, target.parent_run_id, stage=stage):
        if run.info.status not in TERMINAL_STATUSES:
            tracker.finish(run.info.run_id, "KILLED", tags={"killed_reason": f"{stage} stage ended"})
