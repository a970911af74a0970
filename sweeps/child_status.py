"""The final MLflow status of every child run, set by the driver.

Why a module of its own: a trial cannot close its own MLflow run (ASHA stops it with
``SystemExit`` inside ``tune.report``), so every final status is set here, in the driver —
`finish_trial` as trials end (from `sweeps.tune_objects.StatusCallback`), `reconcile` after a
*complete* ``fit``, `kill_unfinished` for leftovers (KILLED). Imports no Ray.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Iterable

from mmsa_core.record_names import Tag, bool_tag
from sweeps import objective as obj
from sweeps.config import TrackingTarget
from sweeps.tracking import TERMINAL_STATUSES, Tracker, flatten_params

log = logging.getLogger("sweeps")


def trial_key(trial: Any) -> str:
    """The run key of a Tune trial: a grid run's own key, else the trial id (search trials)."""
    run = trial.config.get("_run") if isinstance(trial.config, dict) else None
    return run["key"] if run else trial.trial_id


def result_key(result: Any) -> str | None:
    """The run key of a trial's final result (`ray.tune.Result`)."""
    config = result.config or {}
    return config["_run"]["key"] if "_run" in config else (result.metrics or {}).get("trial_id")


def error_text(trial: Any) -> str:
    """The end of a failed trial's error file (Ray's traceback)."""
    path = getattr(trial, "error_file", None)
    try:
        if path and os.path.exists(path):
            with open(path) as f:
                return f.read()[-4000:]
    except OSError:
        pass
    return "trial failed (no error file)"


def stop_tags(last_result: dict[str, Any], max_epochs: int) -> dict[str, str]:
    reason = obj.stop_reason(last_result or {}, max_epochs)
    return {Tag.STOP_REASON: reason, Tag.STOPPED_EARLY: bool_tag(reason != "max_epochs")}


def run_name(key: str, study: str) -> str:
    """A child run's MLflow name: its key first (``full-seed1111 · quickstart``), so that the runs of
    one study differ in their first characters in MLflow's runs table."""
    return f"{key} · {study}" if study else key


def finish_trial(tracker: Tracker, target: TrackingTarget, trial: Any, *, error: str | None,
                 max_epochs: int) -> None:
    """FINISHED (with the stop reason) or FAILED (with the error) for the run of an ended trial."""
    key = trial_key(trial)
    run = tracker.find_child(target.experiment_id, target.parent_run_id, key)
    if run is None:
        if error is None:
            return
        # The trial failed before it could open its run: record it, so every trial has a child.
        spec = trial.config.get("_run") or {"name": "", "tags": {}, "config": trial.config}
        run_id, _ = tracker.child_run(
            experiment_id=target.experiment_id, parent_run_id=target.parent_run_id, run_key=key,
            run_name=run_name(key, target.tags.get(Tag.NAME, "")),
            tags={**target.tags, Tag.STAGE: spec["tags"].get(Tag.STAGE, "search"),
                  Tag.TRIAL_ID: trial.trial_id, **spec["tags"]},
            params=flatten_params(spec["config"]))
    else:
        run_id = run.info.run_id
    if error is not None:
        tracker.finish(run_id, "FAILED", tags={Tag.ERROR: with_timeout_reason(run, error),
                                               Tag.STOPPED_EARLY: "false"})
        return
    tracker.finish(run_id, "FINISHED", tags=stop_tags(trial.last_result, max_epochs))


def reconcile(tracker: Tracker, target: TrackingTarget, grid: Any, max_epochs: int) -> None:
    """After a complete fit: give every child still open the status its trial ended with.

    Covers trials whose callback never ran (the driver died between a trial's end and the
    callback, then the experiment was restored with that trial already TERMINATED).
    """
    for res in grid:
        key = result_key(res)
        if not key:
            continue
        run = tracker.find_child(target.experiment_id, target.parent_run_id, key)
        if run is None or run.info.status in TERMINAL_STATUSES:
            continue
        if res.error is not None:
            tracker.finish(run.info.run_id, "FAILED",
                           tags={Tag.ERROR: with_timeout_reason(run, str(res.error)[-4000:]),
                                 Tag.STOPPED_EARLY: "false"})
        else:
            tracker.finish(run.info.run_id, "FINISHED", tags=stop_tags(res.metrics or {}, max_epochs))


def with_timeout_reason(run: Any, error: str) -> str:
    """A worker the trial-timeout watchdog ended dies like any other: say first why it died."""
    reason = run.data.tags.get(Tag.TIMEOUT_REASON) if run is not None else None
    died = any(s in error for s in ("ActorDiedError", "RayActorError", "actor died", "ActorUnavailable"))
    return f"{reason}\n{error}" if reason and died else error


def kill_unfinished(tracker: Tracker, target: TrackingTarget, *, reason: str, keys: Iterable[str] | None = None,
                    stage: str | None = None) -> None:
    """KILLED for every child of the target still open — of these run keys, or of this stage."""
    wanted = None if keys is None else set(keys)
    for run in tracker.children(target.experiment_id, target.parent_run_id, stage=stage):
        if run.info.status in TERMINAL_STATUSES:
            continue
        if wanted is not None and run.data.tags.get(Tag.RUN_KEY) not in wanted:
            continue
        tracker.finish(run.info.run_id, "KILLED", tags={Tag.KILLED_REASON: reason})
