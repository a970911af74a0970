"""sweeps — Ray Tune trainables around mmsa_core, Optuna search, ASHA, MLflow tracking.

Light on import (no Ray, MLflow, Optuna or torch): the heavy entry points load on first use.

    from sweeps import SweepConfig, run_sweep
    result = run_sweep(SweepConfig(name="mosi-a", data="synthetic-mosi", num_samples=20))

Modules (docs/ARCHITECTURE.md, "sweeps"): `config` (SweepConfig and the grid value types),
`runtime_options` (where and how anything runs, one definition for every entry point), `spaces`
(search spaces from the method registry), `objective` (the fidelity-robust objective), `state`
(sweep directory, resume, journal repair), `resume_state` (Tune state snapshots), `tracking` (the
only mlflow importer), `compat` (every shim for what older versions wrote); the Ray side, each
module one concern: `cluster` (`connect`, `check_resources`, `prepare_data`, `share_dataset`),
`faults` (test-only fault injection), `trial` (one trial, in the workers), `child_status`
(driver-set MLflow statuses), `tune_objects` (everything Tune pickles: the on-disk format), `stage`
(the life of one Tune stage), `grid` (`run_grid`), `search` (`run_sweep`), `lifecycle` (the MLflow
parent run's life, shared with the studies), `console` (`print_result`); `cli` (the command line),
with one entry per method.
"""

from __future__ import annotations

from typing import Any

from sweeps.config import GridRun, GridRunResult, SweepConfig, SweepResult, TrackingTarget, smoke_config
from sweeps.runtime_options import RuntimeOptions, TrialResources
from sweeps.spaces import SPACES, Param, SearchSpace

__all__ = [
    "SweepConfig", "smoke_config", "RuntimeOptions", "TrialResources", "TrackingTarget", "GridRun", "GridRunResult",
    "SPACES", "Param", "SearchSpace",
    "run_sweep", "run_grid", "connect", "check_resources", "prepare_data", "share_dataset",
    "SweepResult", "SweepValidationError", "SweepInterrupted", "Tracker",
]

_LAZY = {
    "run_sweep": "sweeps.search",
    "run_grid": "sweeps.grid", "SweepInterrupted": "sweeps.stage",
    "connect": "sweeps.cluster", "check_resources": "sweeps.cluster",
    "prepare_data": "sweeps.cluster", "share_dataset": "sweeps.cluster",
    "SweepValidationError": "sweeps.cluster",
    "Tracker": "sweeps.tracking",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sweeps' has no attribute {name!r}")
