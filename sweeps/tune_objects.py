"""Everything Ray Tune keeps of a sweep on disk, under stable names: a file format.

Tune pickles the callbacks, the searcher and the trial-dirname function into a stage's
``tuner.pkl`` and the searcher's state into ``searcher-state-*.pkl``, each by module path and
name, and records the trainable's registered name; ``Tuner.restore`` of an interrupted sweep or
study needs every one of them again. So they live here, public, and their names and pickled
attributes are this project's on-disk format. Renaming or moving one breaks resuming every sweep
started before; when that is unavoidable, the old name goes into `sweeps.compat.MOVED_NAMES`.

What a stage's pickles name (`PICKLED_NAMES`; tests/sweeps/test_tune_objects.py checks a fresh
sweep's state against it):

=======================================  ==================================================
``sweeps.tune_objects.StatusCallback``    attributes ``target``, ``max_epochs``, ``tracker``
``sweeps.tune_objects.StateBackupCallback``  ``backup`` (a `sweeps.resume_state.StateBackup`)
``sweeps.tune_objects.ConsoleCallback``   ``console`` (a `sweeps.console.TrialConsole`)
``sweeps.tune_objects.JournalSafeOptunaSearch``  Ray's ``OptunaSearch`` state; its space is a
                                          ``functools.partial`` of `sweeps.spaces.define_by_run`
                                          over `mmsa_core.methods.space.Param` values
``sweeps.tune_objects.trial_dirname``     (a function)
``sweeps.config.TrackingTarget``, ``sweeps.tracking.Tracker``, ``sweeps.console.TrialConsole``,
``sweeps.resume_state.StateBackup``, ``sweeps.spaces.define_by_run``,
``mmsa_core.methods.space.Param``         values held by the objects above
=======================================  ==================================================

A failed trial's error is pickled into the experiment state as well: every exception class a trial
can raise (``mmsa_core.trainer.NonFiniteLossError``, ``sweeps.objective.NonFiniteObjectiveError``,
``sweeps.trial_logging.MlflowUnavailable``, ``sweeps.trial.StoreNotVisible``, ``sweeps.placement.GpuUnavailableError``,
…) keeps its module and name for the same reason.

The trainable itself is not pickled: Tune records its name, `TRAINABLE_NAME` (``_trainable``,
the name since the first release), and the driver passes `make_trainable`'s result again on restore.
The trial's `sweeps.trial.TrialContext` travels through Ray's object store for the running session
only, so it may change between versions.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from optuna.exceptions import UpdateFinishedTrialError
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from sweeps import interrupts
from sweeps.child_status import error_text, finish_trial
from sweeps.cluster import DatasetRef
from sweeps.config import TrackingTarget
from sweeps.runtime_options import TrialResources
from sweeps.resume_state import StateBackup
from sweeps.tracking import Tracker
from sweeps.trial import TrialContext, run_trial

log = logging.getLogger("sweeps")
TRAINABLE_NAME = "_trainable"  # what tuner.pkl records for the trainable (checked by Tuner.restore)
PICKLED_NAMES = frozenset({
    "sweeps.tune_objects.StatusCallback", "sweeps.tune_objects.StateBackupCallback",
    "sweeps.tune_objects.ConsoleCallback", "sweeps.tune_objects.JournalSafeOptunaSearch",
    "sweeps.tune_objects.trial_dirname", "sweeps.config.TrackingTarget", "sweeps.tracking.Tracker",
    "sweeps.console.TrialConsole", "sweeps.resume_state.StateBackup", "sweeps.spaces.define_by_run",
    "mmsa_core.methods.space.Param",
})


# --- the trainable ---------------------------------------------------------------------------------
def trainable(config: dict[str, Any], data: DatasetRef | None = None, context: TrialContext | None = None) -> None:
    """Tune's entry into a trial (`sweeps.trial.run_trial`)."""
    assert data is not None and context is not None
    run_trial(config, data, context)


def make_trainable(shared: DatasetRef, context: TrialContext, resources: TrialResources) -> Any:
    """The wrapped trainable, the same for a new Tuner and for ``Tuner.restore``: Tune's function
    trainable whose restore falls back to the trial's newest checkpoint that still exists
    (`restore_existing`); its name stays `TRAINABLE_NAME`."""
    from ray.tune.trainable.function_trainable import wrap_function

    fn = tune.with_parameters(trainable, data=shared, context=context)
    fn.__name__ = TRAINABLE_NAME

    class Trainable(wrap_function(fn)):  # type: ignore[misc, valid-type]
        def restore(self, checkpoint_path: Any) -> Any:
            return super().restore(restore_existing(checkpoint_path))

    shape = {"cpu": resources.cpu, "gpu": resources.gpu}
    if resources.memory_gb:  # Ray's logical memory resource, in bytes
        shape["memory"] = int(resources.memory_gb * 1024**3)
    return tune.with_resources(Trainable, shape)


def restore_existing(result: Any) -> Any:
    """What a trial restores from: the checkpoint Tune names, or — when it was deleted already (Tune's
    retention of `sweeps.stage.KEEP_CHECKPOINTS` removed it before the state naming its successor was
    saved, and the driver was killed in between) — the trial's newest checkpoint that exists, said on
    the console. With none left the restore fails as Tune's would."""
    import sys

    import pyarrow.fs

    from sweeps.checkpoints import newest_trial_checkpoint

    checkpoint = getattr(result, "checkpoint", None)
    if checkpoint is None:
        return result
    fs, path = checkpoint.filesystem, checkpoint.path.rstrip("/")
    if fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound:
        return result
    newest = newest_trial_checkpoint(fs, path.rsplit("/", 1)[0])
    if newest is None:
        return result
    line = (f"trial checkpoint {path.rsplit('/', 2)[-2]}/{path.rsplit('/', 1)[-1]} no longer exists (deleted by "
            f"checkpoint retention); resuming from its newest checkpoint, {newest.rsplit('/', 1)[-1]}")
    log.warning(line)
    print(line, file=sys.stderr, flush=True)
    return type(result)(checkpoint=tune.Checkpoint(newest, filesystem=fs), metrics=result.metrics)


def trial_dirname(trial: Any) -> str:
    """A trial's folder in the stage directory: ``trial_<id>``."""
    return f"trial_{trial.trial_id}"


# --- driver-side callbacks ---------------------------------------------------------------------------
class StatusCallback(tune.Callback):
    """Sets every child run's final status from the driver, as trials end (`sweeps.child_status`).

    FINISHED (with ``stop_reason``/``stopped_early`` tags; an ASHA-stopped trial is FINISHED with
    ``stopped_early=true, stop_reason=scheduler``) or FAILED with the error text in the ``error``
    tag. Errors here are logged, never raised: bookkeeping must not kill the sweep. (No
    ``on_experiment_end`` pass: after Ctrl-C Tune marks interrupted trials TERMINATED there;
    `sweeps.child_status.reconcile` does that pass after a *complete* ``fit`` instead.)
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
        self._finish(trial, error=error_text(trial))

    def _finish(self, trial: Any, *, error: str | None) -> None:
        try:
            finish_trial(self.tracker, self.target, trial, error=error, max_epochs=self.max_epochs)
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
        self._call("trial_recovered", trial, error_text(trial))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._call("trial_failed", trial, error_text(trial))


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
            log.warning("could not snapshot the Tune state of %s: %s", self.backup.experiment_dir, exc)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._run()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._run()


# --- the searcher ------------------------------------------------------------------------------------
class JournalSafeOptunaSearch(OptunaSearch):
    """OptunaSearch that accepts results for a trial the journal has already finished, and that can
    stop proposing trials at an epoch budget.

    The journal is written at once (``tell``), Tune's snapshot of the searcher a step later. A
    driver killed in between is restored with that trial still live: Tune runs it on from its
    checkpoint and reports to an Optuna trial that is already COMPLETE, which raised
    ``UpdateFinishedTrialError`` and ended the sweep. The journal's first outcome stands.

    Epoch budget (``--budget-epochs``, `set_epoch_budget`): a new trial starts only while the epochs
    trained so far plus what the running trials may still train stay below the budget, so the total
    ends within one trial's epochs of it, and what ASHA saves buys more trials (``num_samples`` stays
    a cap). The counts live in the searcher's state, which Tune saves and restores with it.
    """

    budget_epochs: int = 0  # 0 = no budget (also what a searcher pickled before the budget restores to)
    budget_max_epochs: int = 0

    def set_epoch_budget(self, budget_epochs: int, max_epochs: int) -> None:
        self.budget_epochs, self.budget_max_epochs = int(budget_epochs), int(max_epochs)
        self.trial_epochs: dict[str, int] = {}  # trial id -> the last epoch it reported
        self.trials_ended: set[str] = set()

    def epochs_spent(self) -> int:
        return sum(getattr(self, "trial_epochs", {}).values())

    def budget_left(self) -> bool | None:
        """True: a new trial fits; None: not now (running trials may still stop early); False: spent."""
        if not self.budget_epochs:
            return True
        running = [t for t in self.trial_epochs if t not in self.trials_ended]
        committed = self.epochs_spent() + sum(self.budget_max_epochs - self.trial_epochs[t] for t in running)
        if committed < self.budget_epochs:
            return True
        return None if running else False

    def suggest(self, trial_id: str) -> Any:
        if self.budget_epochs:
            left = self.budget_left()
            if left is None:
                return None  # asked again when a running trial ends
            if left is False:
                log.info("epoch budget reached: %d of %d epochs trained; no new search trial",
                         self.epochs_spent(), self.budget_epochs)
                return self.FINISHED
        config = super().suggest(trial_id)
        if self.budget_epochs and config not in (None, self.FINISHED):
            self.trial_epochs.setdefault(trial_id, 0)
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if self.budget_epochs and "epoch" in result:
            self.trial_epochs[trial_id] = max(self.trial_epochs.get(trial_id, 0), int(result["epoch"]))
        try:
            super().on_trial_result(trial_id, result)
        except UpdateFinishedTrialError:
            pass  # its outcome is already in the journal; intermediate values add nothing

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self._link(trial_id, result)
        if self.budget_epochs:
            self.trials_ended.add(trial_id)
            if result and "epoch" in result:
                self.trial_epochs[trial_id] = max(self.trial_epochs.get(trial_id, 0), int(result["epoch"]))
        try:
            super().on_trial_complete(trial_id, result=result, error=error)
        except UpdateFinishedTrialError:
            log.info("trial %s was already told to the Optuna journal before a restart; "
                     "keeping the journal's outcome", trial_id)

    def _link(self, trial_id: str, result: dict | None) -> None:
        """The Optuna trial's user attributes name its Tune trial, its MLflow run and its fidelity, so
        that the Optuna dashboard and MLflow point at each other (set before ``tell``: a finished
        Optuna trial takes no attribute)."""
        from sweeps import objective as obj

        ot_trial = getattr(self, "_ot_trials", {}).get(trial_id)
        if ot_trial is None or trial_id in getattr(self, "_completed_trials", set()):
            return
        result = result or {}
        attrs = {"tune_trial_id": trial_id, "mlflow_run_id": result.get("mlflow_run_id"),
                 "epochs_run": int(result.get(obj.EPOCH, 0) or 0),
                 "stopped_by_asha": not bool(result.get(obj.TRAINER_DONE, 0.0)) if result else None}
        try:
            for key, value in attrs.items():
                if value is not None:
                    ot_trial.set_user_attr(key, value)
        except Exception as exc:  # noqa: BLE001 - a missing link must not end the sweep
            log.info("could not link Optuna trial of %s: %s", trial_id, exc)
