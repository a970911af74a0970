"""Finding a run's Tune checkpoint under a sweep or study directory, from the driver.

Why a module of its own: the driver reads finished runs' checkpoints after their stage — a study
completes test-time evaluations a trial could not log, a sweep exports the final stage's best model
— and both look a run up the same way: by the MLflow run id each checkpoint's ``sweep_meta.json``
names (`sweeps.trial.META_FILE`).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil

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


def checkpoint_dirs(directory: str) -> list[str]:
    """Every trial checkpoint (``<stage>/trial_*/checkpoint_*``) under a sweep or study directory."""
    return sorted(p for p in glob.glob(os.path.join(directory, "*", "*", "checkpoint_*")) if os.path.isdir(p))


def disk_use(paths: list[str]) -> int:
    """Bytes of the files under `paths`."""
    total = 0
    for root in paths:
        for here, _, files in os.walk(root):
            total += sum(os.path.getsize(os.path.join(here, f)) for f in files
                         if not os.path.islink(os.path.join(here, f)))
    return total


def drop_checkpoints(directory: str) -> tuple[int, int]:
    """Delete every trial checkpoint under a finished sweep or study (``--keep-checkpoints none``);
    returns (checkpoints, bytes) removed. Tune's state then names checkpoints that are gone, which
    only matters to a resume of a finished stage — and finished stages are never resumed."""
    dirs = checkpoint_dirs(directory)
    size = disk_use(dirs)
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
    if dirs:
        logging.getLogger("sweeps").info("--keep-checkpoints none: removed %d checkpoints (%.1f MB) under %s",
                                         len(dirs), size / 1e6, directory)
    return len(dirs), size
