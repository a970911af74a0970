"""The life of one Ray Tune stage: restore or create, fit inside the interrupt scope, and close it.

Why a module of its own: the search stage (Optuna + ASHA), the final stage and every study grid
are Tune experiments with one life, and its rules must not drift apart between them:

1. `Stage.tuner`: ``Tuner.restore`` of ``<storage>/<name>`` when Tune saved a state there (after
   repairing state files a killed driver left truncated, `sweeps.resume_state.repair`, and making
   names pickled by older versions resolve, `sweeps.compat.install_moved_names`), else a new Tuner
   built by the caller with `Stage.run_config` (checkpoints, retries, the status, state-backup and
   console callbacks);
2. `Stage.fit`: ``fit`` inside `sweeps.interrupts.fit_scope`; a partial result after Ctrl-C is
   `SweepInterrupted`, never a result (`require_complete`); then superseded checkpoints are pruned
   and every child run still open gets the status its trial ended with
   (`sweeps.child_status.reconcile`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Callable

from ray import tune

from sweeps import compat, interrupts, storage, tune_objects
from sweeps.child_status import reconcile
from sweeps.cluster import DatasetRef
from sweeps.config import TrackingTarget
from sweeps.runtime_options import TrialResources
from sweeps.console import TrialConsole, ray_verbosity
from sweeps.resume_state import repair
from sweeps.tracking import Tracker
from sweeps.trial import TrialContext

log = logging.getLogger("sweeps")
# Checkpoints each trial keeps while its stage runs. num_to_keep forces an experiment snapshot at
# every checkpoint — wanted (a killed driver loses little) — and Tune warns about it each time.
# 2, not 1: Tune deletes the evicted checkpoint when it registers a new one, *before* the snapshot
# naming the new one is uploaded; a driver killed in between left a state that pointed at a deleted
# checkpoint with num_to_keep=1 ("does not exist on storage anymore"). 3, not 2: CI (2026-12-02)
# caught a SIGKILLed driver whose saved state still named a trial's checkpoint_000000 after the
# trial had registered 000001 and 000002. Three narrows that window; it does not close it.
# `prune_superseded_checkpoints` deletes the extra ones once a stage has ended.
KEEP_CHECKPOINTS = 3


class SweepInterrupted(KeyboardInterrupt):
    """Tune stopped before every trial ended (Ctrl-C): the state is saved, re-run to resume.

    A KeyboardInterrupt, because that is what it is: Tune catches the first Ctrl-C itself and
    returns partial results from ``fit``; this turns that back into the interrupt callers expect.
    """


@dataclass
class Stage:
    """One Tune experiment ``<storage_path>/<name>`` whose trials log under `context.target`."""

    name: str
    storage_path: str
    context: TrialContext
    data: DatasetRef
    max_epochs: int
    max_failures: int
    console: TrialConsole | None = None
    resume_errored: bool = True  # grids re-run errored runs; the search does not (Optuna said FAIL)

    @property
    def path(self) -> str:
        """``<storage>/<name>``: a local folder or a URI (`sweeps.storage`)."""
        return storage.join(storage.resolve(self.storage_path), self.name)

    @property
    def target(self) -> TrackingTarget:
        return self.context.target

    @property
    def resources(self) -> TrialResources:
        return self.context.resources

    def trainable(self) -> Any:
        return tune_objects.make_trainable(self.data, self.context, self.resources)

    def run_config(self) -> Any:
        """Checkpoints, retries and the driver's callbacks. Console: our `TrialConsole` lines from
        --verbose 1 on; Ray Tune's own reporter (trial tables, configuration boxes) only from 2."""
        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
        callbacks = [tune_objects.StatusCallback(self.target, max_epochs=self.max_epochs)]
        if not storage.is_uri(self.path):  # an object store writes whole objects: nothing to repair
            callbacks.append(tune_objects.StateBackupCallback(self.path))
        if self.console is not None and self.context.verbose >= 1:
            callbacks.append(tune_objects.ConsoleCallback(self.console))
        return tune.RunConfig(
            name=self.name, **storage.tune_storage(self.storage_path),
            verbose=ray_verbosity(self.context.verbose),
            failure_config=tune.FailureConfig(max_failures=self.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=KEEP_CHECKPOINTS), callbacks=callbacks)

    def tune_config(self, **kwargs: Any) -> Any:
        """Tune's settings every stage shares (actors reused, ``trial_<id>`` folders) plus `kwargs`."""
        return tune.TuneConfig(reuse_actors=True, trial_dirname_creator=tune_objects.trial_dirname, **kwargs)

    def tuner(self, create: Callable[[Any], Any]) -> tuple[Any, bool]:
        """(tuner, restored): the saved experiment restored, else ``create(trainable)``."""
        trainable = self.trainable()
        if not storage.is_uri(self.path):
            repair(self.path)
        compat.install_moved_names(tune_objects)
        where = storage.tune_storage(self.path)
        path, fs = where["storage_path"], where.get("storage_filesystem")
        if tune.Tuner.can_restore(path, storage_filesystem=fs):
            return tune.Tuner.restore(path, trainable=trainable, resume_errored=self.resume_errored,
                                      storage_filesystem=fs), True
        return create(trainable), False

    def fit(self, tuner: Any, *, expected: int, what: str) -> Any:
        """Run the stage to its end; returns Tune's complete result grid (see the module docstring)."""
        with interrupts.fit_scope():
            grid = tuner.fit()
        require_complete(grid, expected, what)
        prune_superseded_checkpoints(grid)
        reconcile(Tracker(self.target.tracking_uri), self.target, grid, self.max_epochs)
        return grid


def require_complete(grid: Any, expected: int, what: str) -> None:
    """`Tuner.fit` returns normally after Ctrl-C; never treat a partial result as final.

    Ray 2.60 marks every trial TERMINATED on the way out, pending ones included, so the counts
    alone do not show an interrupt; `sweeps.interrupts` saw the signal itself."""
    ended = grid.num_terminated + grid.num_errors
    if interrupts.stopping() or len(grid) < expected or ended < len(grid):
        raise SweepInterrupted(f"{what} was interrupted before all of its trials ended; its state is saved")


def prune_superseded_checkpoints(grid: Any) -> None:
    """Keep only each trial's latest checkpoint once its stage has ended.

    Trials keep `KEEP_CHECKPOINTS` while the stage runs; once ``fit`` has returned complete, Tune's
    final state names only the latest, and the others are disk nobody reads.
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
