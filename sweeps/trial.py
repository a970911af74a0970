"""One trial = one `mmsa_core.trainer.train` run, reported to Tune and MLflow.

Why a module of its own: this is the code that runs *inside* the Ray workers (search trials and
grid runs alike); everything else in the sweep layer runs in the driver. It logs one MLflow batch
and one ``tune.report`` (with a checkpoint) per epoch. Tune calls it through
`sweeps.tune_objects.trainable`, with the trial's `TrialContext` — every setting a trial needs
travels there, typed; none through environment variables.

The trial never closes its own bookkeeping: ASHA stops a trial with ``SystemExit`` raised inside
``tune.report``, so final MLflow statuses are set by the driver (`sweeps.child_status`).

Per-trial time limit (``--trial-timeout``, `TrialContext.trial_timeout`): a hanging trial never
reports, so no Tune stopper or scheduler sees it, and a check in the epoch callback never runs. A
watchdog thread in the trial's own process (`Watchdog`) does: when the attempt has run longer than
the limit it records ``timeout_reason = "trial timeout after N s ..."`` on the trial's MLflow run
and ends the worker process. Tune sees a dead worker and retries the trial from its last checkpoint
within ``max_failures`` (a hang is often transient: stuck I/O, a bad node); once the retries are
used up the driver marks the run FAILED with the timeout first in its ``error`` tag
(`sweeps.child_status`). Works the same on a cluster: the limit travels with the context.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

import ray
from ray import tune

from mmsa_core.record_names import Tag
from sweeps import compat
from sweeps import objective as obj
from sweeps.child_status import run_name
from sweeps.cluster import DatasetRef
from sweeps.config import TrackingTarget
from sweeps.runtime_options import TrialResources
from sweeps.faults import FaultSpec
from sweeps.placement import check_gpu, node_history, placement_tags
from sweeps.state import read_json, write_json
from sweeps.tracking import Tracker, flatten_params
from sweeps.trial_logging import EpochMetricLog, patient

log = logging.getLogger("sweeps")
META_FILE = "sweep_meta.json"  # inside every checkpoint: the MLflow run id and the epoch


class TrialEvaluation(Protocol):
    """What a trial runs after training on some of its runs (the studies' test-time evaluations).

    Picklable (Ray ships it to the workers). ``applies_to(run_key)``: whether the run gets it;
    ``__call__(cfg, data, checkpoint_dir)``: the metrics to log, from the best-validation weights in
    the checkpoint. It must not raise for a failed evaluation: the driver completes what is missing.
    """

    def applies_to(self, run_key: str) -> bool: ...

    def __call__(self, cfg: Any, data: Any, checkpoint_dir: str) -> Mapping[str, float]: ...


@dataclass(frozen=True)
class TrialContext:
    """Everything a trial needs besides its configuration, typed, shipped with the trainable."""

    target: TrackingTarget
    resources: TrialResources
    default_stage: str = "search"
    fault: str = ""  # testing only (sweeps.faults)
    evaluation: TrialEvaluation | None = None  # after training, on the runs it applies to
    trial_timeout: float = 0.0  # seconds one attempt may run; 0 = no limit (see the module doc)
    verbose: int = 1  # the console's verbosity (Ray Train's per-checkpoint messages below 2)
    mlflow_wait: float = 600.0  # seconds to keep trying MLflow when the trial starts and ends


class Watchdog:
    """Ends this worker process when a trial attempt runs past its time limit (a hang).

    `run_id` / `epoch` are updated by the trial as it goes; on expiry the reason is tagged on the
    MLflow run (at most 15 s spent on that), then the process exits: Tune retries the trial.
    """

    def __init__(self, seconds: float, tracking_uri: str, key: str) -> None:
        self.seconds, self.tracking_uri, self.key = seconds, tracking_uri, key
        self.run_id: str | None = None
        self.epoch = 0
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="trial-timeout", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        self._cancelled.set()

    def _watch(self) -> None:
        if self._cancelled.wait(self.seconds):
            return
        reason = (f"trial timeout after {self.seconds:g} s (--trial-timeout; attempt stopped "
                  f"after epoch {self.epoch}, at {time.strftime('%Y-%m-%d %H:%M:%S')})")
        print(f"{self.key}: {reason}; ending the worker process", file=sys.stderr, flush=True)
        if self.run_id is not None:
            run_id = self.run_id
            tagger = threading.Thread(
                target=lambda: Tracker(self.tracking_uri).set_tags(run_id, {Tag.TIMEOUT_REASON: reason}),
                daemon=True)
            tagger.start()
            tagger.join(15)
        sys.stderr.flush()
        os._exit(1)


def run_trial(config: dict[str, Any], data: DatasetRef, context: TrialContext) -> None:
    """One trial: train a RunConfig, one MLflow batch + one Tune report (with checkpoint) per epoch.

    ``config`` is either a flat RunConfig dict (search trials; the MLflow run key is the Tune
    trial id) or ``{"_run": {"key", "name", "tags", "config"}}`` (grid runs).
    """
    from mmsa_core.config import RunConfig

    # before any MLflow call: a store or a storage path this node cannot see fails the trial in seconds
    check_store_visible(context.target.tracking_uri, context.target.experiment_id)
    where = tune.get_context().get_storage()
    check_storage_visible(where.storage_filesystem, where.experiment_fs_path)
    trial_id = tune.get_context().get_trial_id()
    spec = config.get("_run") or {"key": trial_id, "name": "", "tags": {}, "config": config}
    key = spec["key"]
    values = compat.upgrade_config(spec["config"], source=f"trial {trial_id}")
    cfg = RunConfig.from_dict(values, source=f"trial {trial_id}")
    if context.verbose < 2:  # Ray Train's per-checkpoint chatter
        logging.getLogger("ray.train").setLevel(logging.WARNING)
    check_gpu(cfg.device, context.resources.gpu)  # fails at once: never a silent CPU run on a GPU share
    dataset = ray.get(data.ref)
    cap_gpu_memory(context.resources.gpu)
    faults = FaultSpec.parse(context.fault)
    target = context.target
    watchdog = Watchdog(context.trial_timeout, target.tracking_uri, key) if context.trial_timeout > 0 else None
    try:
        _run_trial(cfg, spec, key, trial_id, dataset, context, faults, watchdog)
    finally:
        if watchdog is not None:
            watchdog.cancel()
        release_freed_memory()


class StoreNotVisible(RuntimeError):
    """The trial's node cannot see the sweep's SQLite MLflow store or its storage path (not shared)."""


def check_store_visible(tracking_uri: str, experiment_id: str) -> None:
    """Fail in seconds, naming this node and the path, when a SQLite store is not on this node.

    MLflow would create an empty database there and fail only after `TrialContext.mlflow_wait`
    seconds with "No Experiment with id=... exists". The database must exist and hold the
    experiment (read-only: nothing is created). Other stores are reached over the network.
    """
    if not tracking_uri.startswith("sqlite:///"):
        return
    import sqlite3

    path = tracking_uri[len("sqlite:///"):]
    node = node_name()
    fix = ("the storage path (and the MLflow store under it) must be shared storage every node sees; "
           "or pass --tracking-uri http://<mlflow server>")
    if not os.path.isfile(path):
        raise StoreNotVisible(f"node {node} cannot see the MLflow store {path} (no such file on this node): {fix}")
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)) as db:
            found = db.execute("SELECT 1 FROM experiments WHERE experiment_id = ?", (int(experiment_id),)).fetchone()
    except (sqlite3.Error, ValueError) as exc:
        raise StoreNotVisible(f"node {node} cannot read the MLflow store {path}: {exc}: {fix}") from None
    if found is None:
        raise StoreNotVisible(f"node {node} sees an MLflow store at {path} without experiment {experiment_id} "
                              f"(another copy of the file, not the driver's): {fix}")


def check_storage_visible(filesystem: Any, experiment_path: str) -> None:
    """Fail in seconds, naming this node and the path, when the stage's folder is not on this node
    (a storage path that is not shared): Tune would find out only when the first checkpoint is
    uploaded, after an epoch of training and of MLflow records."""
    import pyarrow.fs

    if filesystem.get_file_info(experiment_path).type != pyarrow.fs.FileType.Directory:
        raise StoreNotVisible(f"node {node_name()} cannot see the storage path {experiment_path} (no such folder "
                              "on this node): --storage-path must be shared storage every node sees (NFS, or a "
                              "URI such as s3://bucket/prefix)")


def node_name() -> str:
    """This node, for messages: ``<host name> (<IP>)``."""
    import socket

    try:
        return f"{socket.gethostname()} ({ray.util.get_node_ip_address()})"
    except Exception:  # noqa: BLE001 - outside Ray, or no network: the host name alone
        return socket.gethostname()


def release_freed_memory() -> None:
    """Give the trial's freed heap back to the OS before the worker takes the next trial.

    Tune reuses workers (``reuse_actors=True``): without this, glibc keeps a finished trial's peak
    heap (measured: 2.5 GB after a 1-epoch HyCon run with MiniLM, 6 GB after MM-CKD, ~0.5 GB once
    trimmed) and two concurrent workers that had each run a large trial were OOM-killed on 24 GiB.
    A no-op where glibc's ``malloc_trim`` is absent (macOS, musl).
    """
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _run_trial(cfg: Any, spec: dict[str, Any], key: str, trial_id: str, dataset: Any,
               context: TrialContext, faults: list[FaultSpec], watchdog: Watchdog | None) -> None:
    """`run_trial`'s body, inside its watchdog: find or open the run, train, log, report."""
    from mmsa_core.trainer import train

    target = context.target
    tracker = Tracker(target.tracking_uri)
    stage = spec["tags"].get(Tag.STAGE, context.default_stage)
    tags = {**target.tags, Tag.STAGE: stage, Tag.TRIAL_ID: trial_id, Tag.METHOD: cfg.method,
            Tag.DATASET: dataset.name, Tag.SEED: str(cfg.seed), **spec["tags"]}

    with contextlib.ExitStack() as stack:
        checkpoint = tune.get_checkpoint()
        resume_dir, meta = None, {}
        if checkpoint is not None:
            resume_dir = stack.enter_context(checkpoint.as_directory())
            meta_path = os.path.join(resume_dir, META_FILE)
            if os.path.exists(meta_path):
                meta = read_json(meta_path)
        # A restored / retried trial continues its own run: the id its checkpoint names, else the
        # run found by its key (a trial that died before its first checkpoint), else a new one.
        # MLflow down at this point: tried again for context.mlflow_wait seconds (`trial_logging`).
        def open_run() -> tuple[str, int]:
            found = meta.get("run_id") if meta.get("run_id") and tracker.reopen(meta["run_id"], tags) else None
            if found is None:
                found, _ = tracker.child_run(
                    experiment_id=target.experiment_id, parent_run_id=target.parent_run_id, run_key=key,
                    run_name=run_name(key, tags.get(Tag.NAME, "")), tags=tags,
                    params=flatten_params(cfg.to_dict()))
            if resume_dir is not None:
                tracker.set_tags(found, {Tag.RESUMED_FROM_EPOCH: meta.get("epoch", "?")})
            earlier = tracker.client.get_run(found).data.tags.get(Tag.RAY_NODE_IDS, "")
            tracker.set_tags(found, {**where, Tag.RAY_NODE_IDS: node_history(earlier, where[Tag.RAY_NODE_ID])})
            tracker.log_trial_dataset(found, dataset, target.tags, context=stage)  # digest from the driver
            return found, _logged_epochs(tracker, found)

        where = placement_tags(cfg.device)
        wait_s = context.mlflow_wait
        run_id, already_logged = patient(open_run, "the trial's run", target.tracking_uri, wait_s=wait_s)
        # Epochs this run logged after the checkpoint this attempt starts from: the driver stopped
        # (Ctrl-C, a kill) after the trial persisted a checkpoint but before Tune recorded it, so
        # the attempt trains them again. They are not logged twice (no duplicate (run, key, step));
        # training is seeded, so the values are those already logged. Tagged for the record.
        start_epoch = int(meta.get("epoch", 0) or 0)
        if already_logged > start_epoch:
            with contextlib.suppress(Exception):
                tracker.set_tags(run_id, {Tag.RETRAINED_EPOCHS: f"{start_epoch + 1}-{already_logged}"})
        epochs_log = EpochMetricLog.from_meta(tracker, run_id, meta, already_logged)
        epochs_log.flush()  # epochs a dead attempt could not record, from its checkpoint
        for fault in faults:
            fault.inject(key, 0)  # testing only: epoch 0 = during set-up (a kill: an OOM-killed actor)
        if watchdog is not None:
            watchdog.run_id, watchdog.epoch = run_id, start_epoch

        last_save: list[Callable[[str], None]] = []

        def write_meta(d: str, epoch: int) -> None:
            write_json(os.path.join(d, META_FILE), {"run_id": run_id, "epoch": epoch, "key": key,
                                                     "pending_metrics": epochs_log.meta()})

        def on_epoch_end(record, save_checkpoint) -> None:
            last_save[:] = [save_checkpoint]
            for fault in faults:
                fault.inject(key, record.epoch)  # testing only: raise / hang / kill
            metrics = record.as_metrics()
            with tempfile.TemporaryDirectory(prefix="mmsa-ckpt-") as d:
                # The checkpoint first: a write that fails (a full disk) leaves nothing of this
                # epoch in MLflow, so the retry from the previous checkpoint logs it exactly once.
                save_checkpoint(d)
                epochs_log.add(record.epoch, metrics)
                write_meta(d, record.epoch)
                for fault in faults:
                    fault.inject_checkpoint_write(key, record.epoch, d)  # testing only: ENOSPC
                if epochs_log.flush():
                    write_meta(d, record.epoch)  # nothing pending any more
                value = obj.objective_value(record, cfg)  # raises on NaN: never told to Optuna
                report = {k: v for k, v in metrics.items()}
                report.update({obj.OBJECTIVE: value, obj.EPOCH: float(record.epoch),
                               obj.TRAINER_DONE: float(obj.trainer_will_stop(record, cfg)),
                               "mlflow_run_id": run_id})  # the searcher links the Optuna trial to it
                tune.report(report, checkpoint=tune.Checkpoint.from_directory(d))
            if watchdog is not None:
                watchdog.epoch = record.epoch

        try:
            result = train(cfg, dataset, on_epoch_end=on_epoch_end, resume_from=resume_dir,
                           progress=False)
        except SystemExit:  # ASHA stopped the trial inside tune.report: it will not resume
            epochs_log.flush_patiently(wait_s=wait_s)
            raise
        epochs_log.flush_patiently(wait_s=wait_s)

        # Reached only when no scheduler stopped the trial (always true in grids).
        if context.evaluation is not None and context.evaluation.applies_to(key):
            with tempfile.TemporaryDirectory(prefix="mmsa-final-") as d:
                if last_save:
                    last_save[0](d)
                    ckpt_dir = d
                else:  # resumed after its last epoch: the checkpoint is the final state
                    ckpt_dir = resume_dir
                extra = dict(context.evaluation(cfg, dataset, ckpt_dir) or {})
            if extra:
                stamp = int(time.time() * 1000)  # one timestamp: a re-send is idempotent in MLflow
                patient(lambda: tracker.log_metrics(run_id, extra, step=result.epochs_run, timestamp_ms=stamp),
                        "the post-training metrics", target.tracking_uri, wait_s=wait_s)


def _logged_epochs(tracker: Tracker, run_id: str) -> int:
    """The last epoch (step) of the run's per-epoch history (0 for a new run)."""
    from mmsa_core.record_names import TRAIN_LOSS

    return max((int(m.step) for m in tracker.client.get_metric_history(run_id, TRAIN_LOSS)), default=0)


def cap_gpu_memory(gpus: float) -> None:
    """With a fractional GPU, cap this process's CUDA allocator to its share of the memory."""
    if 0 < gpus < 1:
        import torch

        if torch.cuda.is_available():
            torch.cuda.set_per_process_memory_fraction(gpus, device=0)
