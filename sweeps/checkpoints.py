"""Finding a run's Tune checkpoint under a sweep or study directory, from the driver.

Why a module of its own: the driver reads finished runs' checkpoints after their stage — a study
completes test-time evaluations a trial could not log, a sweep exports the final stage's best model
— and both look a run up the same way: by the MLflow run id each checkpoint's ``sweep_meta.json``
names (`sweeps.trial.META_FILE`).
"""

from __future__ import annotations

import glob
import json
import os

from sweeps.trial import META_FILE


def find_run_checkpoint(directory: str, run_id: str) -> str | None:
    """The latest checkpoint (``<stage>/trial_*/checkpoint_*``) of MLflow run `run_id` under `directory`;
    it holds the run's best-validation weights. None when there is none."""
    best: tuple[int, str] | None = None
    for meta in glob.glob(os.path.join(directory, "*", "*", "checkpoint_*", META_FILE)):
        try:
            with open(meta) as f:
                info = json.load(f)
        except (OSError, ValueError):
            continue
        if info.get("run_id") == run_id:
            epoch = int(info.get("epoch", 0))
            if best is None or epoch > best[0]:
                best = (epoch, os.path.dirname(meta))
    return best[1] if best else None
