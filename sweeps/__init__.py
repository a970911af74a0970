"""sweeps — Ray Tune trainables around mmsa_core, Optuna search, ASHA, MLflow tracking.

Light on import (no Ray, MLflow, Optuna or torch): the heavy entry points load on first use.

    from sweeps import SweepConfig, run_sweep
    result = run_sweep(SweepConfig(name="mosi-a", data="synthetic-mosi", num_samples=20))

Modules: `config` (SweepConfig and the grid value types), `spaces` (search spaces as data),
`objective` (the fidelity-robust objective), `state` (sweep directory, resume, journal repair),
`tracking` (the only mlflow importer), `tune_runner` (the only ray.tune importer: `run_sweep`,
`run_grid`, `connect`, `prepare_data`, `share_dataset`), `hscl` (the command line).
"""

from __future__ import annotations

from typing import Any

from sweeps.config import (GridRun, GridRunResult, SweepConfig, TrackingTarget, TrialResources,
                           smoke_config)
from sweeps.spaces import SPACES, Param, SearchSpace

__all__ = [
    "SweepConfig", "smoke_config", "TrialResources", "TrackingTarget", "GridRun", "GridRunResult",
    "SPACES", "Param", "SearchSpace",
    "run_sweep", "run_grid", "connect", "check_resources", "prepare_data", "share_dataset",
    "SweepResult", "SweepValidationError", "SweepInterrupted", "Tracker",
]

_LAZY = {
    "run_sweep": "sweeps.tune_runner", "run_grid": "sweeps.tune_runner",
    "connect": "sweeps.tune_runner", "check_resources": "sweeps.tune_runner",
    "prepare_data": "sweeps.tune_runner", "share_dataset": "sweeps.tune_runner",
    "SweepResult": "sweeps.tune_runner", "SweepValidationError": "sweeps.tune_runner",
    "SweepInterrupted": "sweeps.tune_runner",
    "Tracker": "sweeps.tracking",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sweeps' has no attribute {name!r}")
