"""The trainable: one trial = one `mmsa_core.trainer.train` run, reported to Tune and MLflow.

Why a module of its own: this is the code that runs *inside* the Ray workers (search trials and
grid runs alike); everything else in the sweep layer runs in the driver. It logs one MLflow batch
and one ``tune.report`` (with a checkpoint) per epoch.

The trial never closes its own bookkeeping: ASHA stops a trial with ``SystemExit`` raised inside
``tune.report``, so final MLflow statuses are set by the driver (`sweeps.callbacks`).
Tune pickles `_wrap`'s result and registers it under the name ``_trainable``: keep that name, or
``Tuner.restore`` of an interrupted sweep refuses the trainable.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import ray
from ray import tune

from sweeps import objective as obj
from sweeps.cluster import DatasetRef
from sweeps.config import TrackingTarget, TrialResources
from sweeps.faults import FaultSpec, InjectedFault
from sweeps.state import read_json, write_json
from sweeps.tracking import Tracker, flatten_params

_META_FILE = "sweep_meta.json"  # inside every checkpoint: the MLflow run id and the epoch


@dataclass(frozen=True)
class _TrialContext:
    target: TrackingTarget
    resources: TrialResources
    default_stage: str = "search"
    fault: str = ""
    post_train: Callable[..., Mapping[str, float]] | None = None


def _trainable(config: dict[str, Any], data: DatasetRef | None = None,
               context: _TrialContext | None = None) -> None:
    """One trial: train a RunConfig, one MLflow batch + one Tune report (with checkpoint) per epoch.

    ``config`` is either a flat RunConfig dict (search trials; the MLflow run key is the Tune
    trial id) or ``{"_run": {"key", "name", "tags", "config"}}`` (grid runs).
    """
    from mmsa_core.config import RunConfig
    from mmsa_core.trainer import train

    assert data is not None and context is not None
    trial_id = tune.get_context().get_trial_id()
    spec = config.get("_run") or {"key": trial_id, "name": "", "tags": {}, "config": config}
    key = spec["key"]
    cfg = RunConfig.from_dict(spec["config"], source=f"trial {trial_id}")
    dataset = ray.get(data.ref)
    _cap_gpu_memory(context.resources.gpu)
    faults = FaultSpec.parse(context.fault)
    target = context.target
    tracker = Tracker(target.tracking_uri)
    stage = spec["tags"].get("stage", context.default_stage)
    tags = {**target.tags, "stage": stage, "trial_id": trial_id, "method": cfg.method,
            "dataset": dataset.name, "seed": str(cfg.seed), **spec["tags"]}

    with contextlib.ExitStack() as stack:
        checkpoint = tune.get_checkpoint()
        resume_dir, meta = None, {}
        if checkpoint is not None:
            resume_dir = stack.enter_context(checkpoint.as_directory())
            meta_path = os.path.join(resume_dir, _META_FILE)
            if os.path.exists(meta_path):
                meta = read_json(meta_path)
        # A restored / retried trial continues its own run: the id its checkpoint names, else the
        # run found by its key (a trial that died before its first checkpoint), else a new one.
        run_id = meta.get("run_id") if meta.get("run_id") and tracker.reopen(meta["run_id"], tags) else None
        if run_id is None:
            run_id, _ = tracker.child_run(
                experiment_id=target.experiment_id, parent_run_id=target.parent_run_id, run_key=key,
                run_name=spec["name"] or f"{tags.get('sweep_name', 'run')}-{key}", tags=tags,
                params=flatten_params(cfg.to_dict()))
        if resume_dir is not None:
            tracker.set_tags(run_id, {"resumed_from_epoch": meta.get("epoch", "?")})

        last_save: list[Callable[[str], None]] = []

        def on_epoch_end(record, save_checkpoint) -> None:
            last_save[:] = [save_checkpoint]
            if any(f.fires(key, record.epoch) for f in faults):
                raise InjectedFault(f"injected fault in {key} at epoch {record.epoch}")
            metrics = record.as_metrics()
            tracker.log_metrics(run_id, metrics, step=record.epoch)
            value = obj.objective_value(record, cfg)  # raises on NaN: never told to Optuna
            report = {k: v for k, v in metrics.items()}
            report.update({obj.OBJECTIVE: value, obj.EPOCH: float(record.epoch),
                           obj.TRAINER_DONE: float(obj.trainer_will_stop(record, cfg))})
            with tempfile.TemporaryDirectory(prefix="mmsa-ckpt-") as d:
                save_checkpoint(d)
                write_json(os.path.join(d, _META_FILE), {"run_id": run_id, "epoch": record.epoch,
                                                         "key": key})
                tune.report(report, checkpoint=tune.Checkpoint.from_directory(d))

        result = train(cfg, dataset, on_epoch_end=on_epoch_end, resume_from=resume_dir,
                       progress=False)

        # Reached only when no scheduler stopped the trial (always true in grids).
        if context.post_train is not None:
            with tempfile.TemporaryDirectory(prefix="mmsa-final-") as d:
                if last_save:
                    last_save[0](d)
                    ckpt_dir = d
                else:  # resumed after its last epoch: the checkpoint is the final state
                    ckpt_dir = resume_dir
                extra = dict(context.post_train(cfg, dataset, ckpt_dir) or {})
            if extra:
                tracker.log_metrics(run_id, extra, step=result.epochs_run)


def _cap_gpu_memory(gpus: float) -> None:
    """With a fractional GPU, cap this process's CUDA allocator to its share of the memory."""
    if 0 < gpus < 1:
        import torch

        if torch.cuda.is_available():
            torch.cuda.set_per_process_memory_fraction(gpus, device=0)


def _wrap(shared: DatasetRef, context: _TrialContext, resources: TrialResources) -> Any:
    """The same wrapped trainable for a new Tuner and for Tuner.restore."""
    fn = tune.with_parameters(_trainable, data=shared, context=context)
    return tune.with_resources(fn, {"cpu": resources.cpu, "gpu": resources.gpu})

