"""The grid API: an explicit list of runs as one resumable Ray Tune experiment, and the stage
mechanics the search shares with it.

Why a module of its own: this is the reusable "run these configurations on Ray Tune" layer the
final stage of a sweep and `ablations.runner` both build on; it knows nothing about Optuna.

``run_grid(runs, *, data, target, storage_path, name, ...) -> list[GridRunResult]``
    An explicit list of runs (`GridRun`: key, RunConfig, tags — e.g. variant × seed) as one Ray
    Tune grid with the same trainable as the search: per-epoch MLflow child runs under
    ``target.parent_run_id`` with the given tags, checkpoints, retries from the last checkpoint,
    driver-set final statuses, resume (``Tuner.restore`` of ``<storage_path>/<name>``; runs whose
    child already FINISHED are skipped). ``post_train(cfg, data, checkpoint_dir) -> dict`` runs
    inside the trial after training (e.g. robustness evaluation with
    `mmsa_core.trainer.evaluate_checkpoint`); its metrics go to the same child run. It must be
    a module-level (picklable) function.

Shared with the search stage: `_restore_or_none` (``Tuner.restore`` after repairing truncated
state files), `_tune_run_config` (checkpoints, retries, callbacks), `_require_complete` (a partial
``fit`` after Ctrl-C is `SweepInterrupted`, never a result), `_prune_superseded_checkpoints`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ray import tune

from sweeps import interrupts
from sweeps.callbacks import (ConsoleCallback, StateBackupCallback, StatusCallback, _kill_keys,
                              _reconcile)
from sweeps.cluster import DatasetRef, share_dataset
from sweeps.config import GridRun, GridRunResult, TrackingTarget, TrialResources
from sweeps.console import TrialConsole, ray_verbosity, resources_text
from sweeps.objective import mode_for
from sweeps.resume_state import repair
from sweeps.state import SweepStateError, ensure_dir, read_json, write_json
from sweeps.tracking import TERMINAL_STATUSES, Tracker
from sweeps.trainable import _TrialContext, _wrap

if TYPE_CHECKING:
    from mmsa_core.data import MSADataset

log = logging.getLogger("sweeps")


class SweepInterrupted(KeyboardInterrupt):
    """Tune stopped before every trial ended (Ctrl-C): the state is saved, re-run to resume.

    A KeyboardInterrupt, because that is what it is: Tune catches the first Ctrl-C itself and
    returns partial results from ``fit``; this turns that back into the interrupt callers expect.
    """


def _require_complete(grid: Any, expected: int, what: str) -> None:
    """`Tuner.fit` returns normally after Ctrl-C; never treat a partial result as final.

    Ray 2.60 marks every trial TERMINATED on the way out, pending ones included, so the counts
    alone do not show an interrupt; `sweeps.interrupts` saw the signal itself."""
    ended = grid.num_terminated + grid.num_errors
    if interrupts.stopping() or len(grid) < expected or ended < len(grid):
        raise SweepInterrupted(f"{what} was interrupted before all of its trials ended; its state "
                               f"is saved")


def _prune_superseded_checkpoints(grid: Any) -> None:
    """Keep only each trial's latest checkpoint once its stage has ended.

    Trials keep `KEEP_CHECKPOINTS` while the stage runs (see `_tune_run_config`); once ``fit`` has returned
    complete, Tune's final state names only the latest, and the others are disk nobody reads.
    """
    import pyarrow.fs

    for res in grid:
        ckpt = res.checkpoint
        if ckpt is None:
            continue
        parent = os.path.dirname(ckpt.path.rstrip("/"))
        try:
            for info in ckpt.filesystem.get_file_info(pyarrow.fs.FileSelector(parent)):
                name = os.path.basename(info.path)
                if (info.type == pyarrow.fs.FileType.Directory and name.startswith("checkpoint_")
                        and info.path.rstrip("/") != ckpt.path.rstrip("/")):
                    ckpt.filesystem.delete_dir(info.path)
        except OSError as exc:
            log.warning("could not prune old checkpoints in %s: %s", parent, exc)


def run_grid(runs: Sequence[GridRun], *, data: "MSADataset | DatasetRef", target: TrackingTarget,
             storage_path: str, name: str, resources: TrialResources = TrialResources(),
             max_concurrent: int = 0, max_failures: int = 2,
             post_train: Callable[..., Mapping[str, float]] | None = None,
             fault: str = "", verbose: int = 1, trial_timeout: float = 0.0,
             label: str = "") -> list[GridRunResult]:
    """Run explicit configurations as one Ray Tune grid; resumable; one MLflow child per run.

    Needs a connected Ray (`connect`). Returns one `GridRunResult` per run, in input order.
    A run whose child (same key under the same parent) already FINISHED is not run again
    (status SKIPPED, metrics read back from MLflow). The Tune experiment lives in
    ``<storage_path>/<name>``; re-running with the same runs restores it, a changed list of runs
    raises `SweepStateError`. ``label`` names the stage on the console (default: `name`).
    ``trial_timeout`` > 0 stops a run's attempt that takes longer
    (seconds; see `sweeps.trainable`).
    """
    keys = [r.key for r in runs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"grid {name!r}: run keys must be unique, got {keys}")
    ensure_dir(storage_path)
    spec_path = os.path.join(storage_path, f"{name}.grid.json")
    specs = [{"key": r.key, "name": r.name or r.key, "tags": {k: str(v) for k, v in r.tags.items()},
              "config": r.config.to_dict()} for r in runs]
    digest = hashlib.sha256(json.dumps(specs, sort_keys=True).encode()).hexdigest()[:16]
    if os.path.exists(spec_path) and read_json(spec_path).get("hash") != digest:
        raise SweepStateError(
            f"grid {name!r} in {storage_path} was started with other runs; use a new name (or "
            f"remove {os.path.join(storage_path, name)} and {spec_path}) to run a different grid")
    write_json(spec_path, {"hash": digest, "runs": specs})

    tracker = Tracker(target.tracking_uri)
    done: dict[str, GridRunResult] = {}
    for r in runs:
        child = tracker.find_child(target.experiment_id, target.parent_run_id, r.key)
        if child is not None and child.info.status == "FINISHED":
            done[r.key] = _result_from_run(r.key, child)
    todo = [s for s in specs if s["key"] not in done]
    results: dict[str, GridRunResult] = dict(done)
    if todo:
        shared = share_dataset(data)
        context = _TrialContext(target=target, resources=resources, default_stage="grid",
                                fault=fault, post_train=post_train, trial_timeout=trial_timeout)
        trainable = _wrap(shared, context, resources)
        path = os.path.join(os.path.abspath(storage_path), name)
        max_epochs = max(r.config.max_epochs for r in runs)
        tuner = _restore_or_none(path, trainable)
        if tuner is None:
            tuner = tune.Tuner(
                trainable,
                param_space={"_run": tune.grid_search(todo)},
                tune_config=tune.TuneConfig(num_samples=1, reuse_actors=True,
                                            max_concurrent_trials=max_concurrent or None,
                                            trial_dirname_creator=_trial_dirname),
                run_config=_tune_run_config(name=name, storage_path=storage_path, target=target,
                                            max_epochs=max_epochs, max_failures=max_failures,
                                            verbose=verbose, console=TrialConsole(
                                                stage=label or name, total=len(todo),
                                                resources=resources_text(resources.cpu, resources.gpu),
                                                metric=runs[0].config.select_metric,
                                                mode=mode_for(runs[0].config.select_metric),
                                                max_epochs=max_epochs, verbose=verbose,
                                                note=(f"{len(done)} already finished"
                                                      if done else ""))))
        with interrupts.fit_scope():
            grid = tuner.fit()
        _require_complete(grid, len(todo), f"grid {name!r}")
        _prune_superseded_checkpoints(grid)
        _reconcile(tracker, target, grid, max_epochs)
        for res in grid:
            spec = (res.config or {}).get("_run")
            if spec is None:
                continue
            results[spec["key"]] = _result_from_tune(spec["key"], res, tracker, target)
    _kill_keys(tracker, target, set(keys), f"grid {name} ended")
    out = []
    for r in runs:
        out.append(results.get(r.key) or GridRunResult(key=r.key, run_id=None, status="KILLED",
                                                       error="no Tune result"))
    return out


def _result_from_run(key: str, run: Any) -> GridRunResult:
    m = run.data.metrics
    return GridRunResult(
        key=key, run_id=run.info.run_id, status="SKIPPED",
        best_epoch=int(m["best_epoch"]) if "best_epoch" in m else None,
        epochs_run=int(m["epochs_run"]) if "epochs_run" in m else None,
        best_valid={k[len("best/valid/"):]: v for k, v in m.items() if k.startswith("best/valid/")},
        best_test={k[len("best/test/"):]: v for k, v in m.items() if k.startswith("best/test/")},
        metrics=dict(m))


def _result_from_tune(key: str, res: Any, tracker: Tracker, target: TrackingTarget) -> GridRunResult:
    child = tracker.find_child(target.experiment_id, target.parent_run_id, key)
    m = {k: v for k, v in (res.metrics or {}).items() if isinstance(v, (int, float))}
    status = child.info.status if child is not None else ("FAILED" if res.error else "KILLED")
    return GridRunResult(
        key=key, run_id=child.info.run_id if child is not None else None,
        status=status if status in TERMINAL_STATUSES else "KILLED",
        best_epoch=int(m["best_epoch"]) if "best_epoch" in m else None,
        epochs_run=int(m["epochs_run"]) if "epochs_run" in m else None,
        best_valid={k[len("best/valid/"):]: float(v) for k, v in m.items() if k.startswith("best/valid/")},
        best_test={k[len("best/test/"):]: float(v) for k, v in m.items() if k.startswith("best/test/")},
        metrics={k: float(v) for k, v in m.items()},
        checkpoint_path=res.checkpoint.path if res.checkpoint is not None else None,
        error=str(res.error)[-2000:] if res.error else None)


def _restore_or_none(path: str, trainable: Any, *, resume_errored: bool = True) -> Any:
    """``Tuner.restore`` of `path` after repairing truncated state files; None if nothing to restore.

    A grid re-runs its errored runs (``resume_errored``: an explicit list of runs must all finish);
    the search stage does not — Optuna has recorded an errored trial as FAIL, and a re-run that then
    finished would leave MLflow and the study disagreeing.
    """
    repair(path)
    if not tune.Tuner.can_restore(path):
        return None
    return tune.Tuner.restore(path, trainable=trainable, resume_errored=resume_errored)


def _trial_dirname(trial: Any) -> str:
    return f"trial_{trial.trial_id}"


KEEP_CHECKPOINTS = 3  # per trial while a stage runs (see below)


def _tune_run_config(*, name: str, storage_path: str, target: TrackingTarget, max_epochs: int,
                     max_failures: int, verbose: int, console: TrialConsole | None = None) -> Any:
    # Console: our `TrialConsole` lines from --verbose 1 on; Ray Tune's own reporter (trial
    # tables, configuration boxes, TensorBoard hint) only from 2 on (`ray_verbosity`).
    # num_to_keep forces an experiment snapshot at every checkpoint - wanted here (the searcher
    # state is saved often, so a killed driver loses little) - and Tune warns about it each time.
    # 2, not 1: Tune deletes the evicted checkpoint when it registers a new one, *before* the
    # snapshot naming the new one is uploaded; a driver killed in between left a state that
    # pointed at a deleted checkpoint with num_to_keep=1 ("does not exist on storage anymore").
    # 3, not 2: CI (2026-12-02) caught a SIGKILLed driver whose saved state still named a trial's
    # checkpoint_000000 after the trial had registered 000001 and 000002 (the driver processed two
    # results between snapshots), so 000000 was gone and the trial FAILED on resume. Three kept
    # narrows that window to three results between snapshots; it does not close it.
    # `_prune_superseded_checkpoints` deletes the extra ones once a stage has ended.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    callbacks = [StatusCallback(target, max_epochs=max_epochs),
                 StateBackupCallback(os.path.join(storage_path, name))]
    if console is not None and verbose >= 1:
        callbacks.append(ConsoleCallback(console))
    return tune.RunConfig(
        name=name, storage_path=os.path.abspath(storage_path), verbose=ray_verbosity(verbose),
        failure_config=tune.FailureConfig(max_failures=max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=KEEP_CHECKPOINTS), callbacks=callbacks)
