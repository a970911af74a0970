"""Compatibility facade: the names ``sweeps.tune_runner`` held before it was split by concern.

New code imports from the modules themselves:

==================  ===========================================================================
`sweeps.cluster`    `connect`, `check_resources`, `prepare_data`, `share_dataset`, `DatasetRef`,
                    `SweepValidationError`, ``REPO_ROOT``
`sweeps.faults`     `FaultSpec`, `InjectedFault` (test-only fault injection)
`sweeps.trainable`  `_trainable`, `_TrialContext`, `_wrap`, `_cap_gpu_memory`
`sweeps.callbacks`  `StatusCallback`, `StateBackupCallback`, `_reconcile`, `_finish_trial`, `_kill_*`
`sweeps.grid`       `run_grid`, `SweepInterrupted`, `_restore_or_none`, `_tune_run_config`,
                    `_require_complete`, `_prune_superseded_checkpoints`
`sweeps.search`     `run_sweep`, `SweepResult`, `JournalSafeOptunaSearch`, `_optuna_search`,
                    `_close_ghost_trials`
`sweeps.lifecycle`  `parent_run` (the MLflow parent run's life), `prepare_storage`, `connect_checked`
`sweeps.console`    `print_result`
==================  ===========================================================================

Why this module stays: Ray Tune pickles the callbacks, the searcher, the trial-dirname function
and the trainable's pieces into ``tuner.pkl`` and the searcher state by their module path. A sweep
interrupted before the split names them ``sweeps.tune_runner.<name>``; every such name resolves
here to the same object, so that sweep still resumes. Do not remove a name from this module.
"""

from __future__ import annotations

# ruff: noqa: F401  (every import here is a re-export)
from sweeps.callbacks import (StateBackupCallback, StatusCallback, _error_text, _finish_trial,
                              _kill_keys, _kill_stage, _reconcile, _trial_key, log)
from sweeps.cluster import (REPO_ROOT, DatasetRef, SweepValidationError, check_resources, connect,
                            prepare_data, share_dataset)
from sweeps.console import print_result
from sweeps.faults import FaultSpec, InjectedFault
from sweeps.grid import (SweepInterrupted, _prune_superseded_checkpoints, _require_complete,
                         _restore_or_none, _result_from_run, _result_from_tune, _trial_dirname,
                         _tune_run_config, run_grid)
from sweeps.search import (JournalSafeOptunaSearch, SweepResult, _close_ghost_trials, _optuna_search,
                           _search, run_sweep)
from sweeps.trainable import _META_FILE, _cap_gpu_memory, _trainable, _TrialContext, _wrap

__all__ = [
    "run_sweep", "run_grid", "SweepResult", "connect", "check_resources", "prepare_data",
    "share_dataset", "print_result", "SweepValidationError", "SweepInterrupted", "FaultSpec",
    "InjectedFault", "DatasetRef", "JournalSafeOptunaSearch", "StatusCallback",
    "StateBackupCallback", "REPO_ROOT",
]

# every module-level name the unsplit module had, private ones included (see the docstring)
LEGACY_NAMES = (
    "log", "REPO_ROOT", "_META_FILE", "SweepValidationError", "SweepInterrupted",
    "_require_complete", "_prune_superseded_checkpoints", "DatasetRef", "prepare_data", "connect",
    "check_resources", "share_dataset", "FaultSpec", "InjectedFault", "_TrialContext", "_trainable",
    "_cap_gpu_memory", "_trial_dirname", "_trial_key", "_error_text", "StatusCallback",
    "StateBackupCallback", "_restore_or_none", "_reconcile", "_finish_trial", "run_grid",
    "_kill_keys", "_result_from_run", "_result_from_tune", "_wrap", "_tune_run_config",
    "SweepResult", "run_sweep", "_search", "JournalSafeOptunaSearch", "_optuna_search",
    "_close_ghost_trials", "_kill_stage", "print_result",
)
