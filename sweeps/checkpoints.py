"""Finding a run's Tune checkpoint under a sweep or study directory (the driver), or a trial's
newest checkpoint when the one Tune names is gone (the trial's restore).

Why a module of its own: the driver reads finished runs' checkpoints after their stage — a study
completes test-time evaluations a trial could not log, a sweep exports the final stage's best model
— and both look a run up the same way: by the MLflow run id each checkpoint's ``sweep_meta.json``
names (`sweeps.trial.META_FILE`).
"""

from __future__ import annotations

import fnmatch
import glob
import json
import logging
import os
from typing import TYPE_CHECKING

from sweeps import storage
from sweeps.trial import META_FILE

if TYPE_CHECKING:
    import pyarrow.fs


def find_run_checkpoint(directory: str, run_id: str) -> str | None:
    """The latest checkpoint (``<stage>/trial_*/checkpoint_*``) of MLflow run `run_id` under `directory`
    (a local folder or a URI: the checkpoint is then a URI, `sweeps.storage.local_copy` reads it);
    it holds the run's best-validation weights. None when there is none."""
    if storage.is_uri(directory):
        metas = [m for m in storage.list_files(directory, recursive=True)
                 if storage.relpath(m, directory).count("/") == 3
                 and fnmatch.fnmatch(storage.relpath(m, directory), f"*/*/checkpoint_*/{META_FILE}")]
    else:
        metas = glob.glob(os.path.join(directory, "*", "*", "checkpoint_*", META_FILE))
    best: tuple[int, str] | None = None
    for meta in metas:
        try:
            info = json.loads(storage.read_text(meta))
        except (OSError, ValueError):
            continue
        if info.get("run_id") == run_id:
            epoch = int(info.get("epoch", 0))
            if best is None or epoch > best[0]:
                best = (epoch, storage.dirname(meta))
    return best[1] if best else None


def newest_trial_checkpoint(filesystem: "pyarrow.fs.FileSystem", trial_dir: str) -> str | None:
    """The path of the newest complete checkpoint (``checkpoint_<n>`` holding `META_FILE`) in a
    trial's folder on `filesystem`, or None. Used when the checkpoint Tune names is gone: Tune deletes
    a trial's oldest kept checkpoint when it registers a new one, before the state naming the new
    one is saved, so a driver killed in between restores a trial onto a deleted checkpoint."""
    import pyarrow.fs

    try:
        infos = filesystem.get_file_info(pyarrow.fs.FileSelector(trial_dir, allow_not_found=True))
    except OSError:
        return None
    names = sorted((i.path for i in infos if i.type == pyarrow.fs.FileType.Directory
                    and i.base_name.startswith("checkpoint_")), reverse=True)
    for path in names:
        if filesystem.get_file_info(f"{path}/{META_FILE}").type == pyarrow.fs.FileType.File:
            return path
    return None


def checkpoint_files(directory: str) -> dict[str, int]:
    """Every trial checkpoint (``<stage>/trial_*/checkpoint_*``) under a sweep or study directory (a
    local folder or a URI), with the bytes of its files."""
    out: dict[str, int] = {}
    for f in storage.list_files(directory, recursive=True):
        parts = storage.relpath(f, directory).split("/")
        if len(parts) >= 4 and parts[1].startswith("trial_") and parts[2].startswith("checkpoint_"):
            ckpt = storage.join(directory, *parts[:3])
            size = os.path.getsize(f) if not storage.is_uri(f) and not os.path.islink(f) else 0
            out[ckpt] = out.get(ckpt, 0) + size
    return out


def drop_checkpoints(directory: str) -> tuple[int, int]:
    """Delete every trial checkpoint under a finished sweep or study (``--keep-checkpoints none``);
    returns (checkpoints, bytes removed; bytes are counted on local disks only). Tune's state then
    names checkpoints that are gone, which only matters to a resume of a finished stage — and
    finished stages are never resumed."""
    found = checkpoint_files(directory)
    for ckpt in found:
        storage.delete(ckpt)
    if found:
        logging.getLogger("sweeps").info("--keep-checkpoints none: removed %d checkpoints (%.1f MB) under %s",
                                         len(found), sum(found.values()) / 1e6, directory)
    return len(found), sum(found.values())
