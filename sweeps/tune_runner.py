"""Ray Tune execution of sweeps — the only module of the project that imports ``ray.tune``.

Public API (also what the ablations package builds on):

``run_sweep(cfg: SweepConfig) -> SweepResult``
    The whole sweep: validate → connect Ray → MLflow parent → search stage (OptunaSearch,
    define-by-run space, seeded TPE or GP, ASHA) → best configuration → final stage (the best
    configuration on ``cfg.final_seeds``, no scheduler). Re-running it with the same name resumes
    an interrupted sweep (``Tuner.restore``); a finished one is not run again.

``prepare_data(run_cfg) -> MSADataset``
    Load and validate the data a RunConfig names, and build the model once, in the driver, so a
    bad file or configuration fails before any trial exists (`SweepValidationError`).

``connect(address="", num_cpus=0) -> dict`` and ``check_resources(TrialResources)``
    ``ray.init``: a cluster address (``--address`` or ``$RAY_ADDRESS``; also what ``ray job
    submit`` sets) is joined with no resource arguments; otherwise a local Ray is started, with
    the repository on the workers' ``PYTHONPATH``. `check_resources` refuses a trial shape no
    node can hold (e.g. a GPU on a CPU-only cluster) instead of leaving trials PENDING forever.

``share_dataset(data) -> DatasetRef``
    Put the dataset (NumPy arrays, token ids included) in the object store once; every trial of
    every grid on a node then reads it zero-copy. Pass the ref to several `run_grid` calls.

``run_grid(runs, *, data, target, storage_path, name, ...) -> list[GridRunResult]``
    An explicit list of runs (`GridRun`: key, RunConfig, tags — e.g. variant × seed) as one Ray
    Tune grid with the same trainable as the search: per-epoch MLflow child runs under
    ``target.parent_run_id`` with the given tags, checkpoints, retries from the last checkpoint,
    driver-set final statuses, resume (``Tuner.restore`` of ``<storage_path>/<name>``; runs whose
    child already FINISHED are skipped). ``post_train(cfg, data, checkpoint_dir) -> dict`` runs
    inside the trial after training (e.g. robustness evaluation with
    `mmsa_core.trainer.evaluate_checkpoint`); its metrics go to the same child run. It must be
    a module-level (picklable) function.

Errors: `SweepValidationError` (bad data / configuration / resources, raised before anything is
launched), `sweeps.state.SweepStateError` (changed configuration on resume, unwritable storage),
`sweeps.resume_state.ResumeStateError` (a truncated ``tuner.pkl`` with no complete copy to restore;
other truncated state files are put back from the copies `StateBackupCallback` keeps),
`SweepInterrupted` (a KeyboardInterrupt: Ctrl-C stopped Tune; its state is saved, re-run to resume).

The trial (`_trainable`) never closes its own bookkeeping: ASHA stops a trial with ``SystemExit``
raised inside ``tune.report``, so final MLflow statuses are set by the driver-side
`StatusCallback` and by `_reconcile` after ``fit``; leftovers are marked KILLED.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import ray
from ray import tune
from optuna.exceptions import UpdateFinishedTrialError
from ray.tune.search.optuna import OptunaSearch

from sweeps import objective as obj
from sweeps.config import (GridRun, GridRunResult, SweepConfig, TrackingTarget, TrialResources,
                           data_name)
from sweeps.resume_state import StateBackup, repair
from sweeps.spaces import SPACES
from sweeps.state import (BEST_CONFIG_FILE, SweepStateError, code_version, ensure_dir,
                          open_sweep_state, read_json, repair_journal, write_json)
from sweeps.tracking import TERMINAL_STATUSES, Tracker, flatten_params

if TYPE_CHECKING:
    from mmsa_core.config import RunConfig
    from mmsa_core.data import MSADataset

log = logging.getLogger("sweeps")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_META_FILE = "sweep_meta.json"  # inside every checkpoint: the MLflow run id and the epoch


class SweepValidationError(ValueError):
    """The sweep cannot start (data, configuration, resources); nothing was launched."""


class SweepInterrupted(KeyboardInterrupt):
    """Tune stopped before every trial ended (Ctrl-C): the state is saved, re-run to resume.

    A KeyboardInterrupt, because that is what it is: Tune catches the first Ctrl-C itself and
    returns partial results from ``fit``; this turns that back into the interrupt callers expect.
    """


def _require_complete(grid: Any, expected: int, what: str) -> None:
    """`Tuner.fit` returns normally after Ctrl-C; never treat a partial result as final."""
    ended = grid.num_terminated + grid.num_errors
    if len(grid) < expected or ended < len(grid):
        raise SweepInterrupted(f"{what} was interrupted before all of its trials ended; its state "
                               f"is saved")


def _prune_superseded_checkpoints(grid: Any) -> None:
    """Keep only each trial's latest checkpoint once its stage has ended.

    Trials keep two while the stage runs (see `_tune_run_config`); once ``fit`` has returned
    complete, Tune's final state names only the latest, and the other is disk nobody reads.
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


# =============================================================================================
# driver helpers: data, Ray, resources


@dataclass(frozen=True)
class DatasetRef:
    """A dataset already in Ray's object store (see `share_dataset`)."""

    ref: Any  # ray.ObjectRef
    name: str


def prepare_data(run_cfg: "RunConfig") -> "MSADataset":
    """Load + validate the dataset `run_cfg` names and build its model once, in the driver.

    Raises `SweepValidationError` with the data layer's full message (every problem, naming file,
    split, key and shape) or the model's configuration error.
    """
    from mmsa_core.data import DataValidationError
    from mmsa_core.trainer import build_model, load_run_data

    try:
        data = load_run_data(run_cfg)
    except DataValidationError as exc:
        raise SweepValidationError(str(exc)) from None
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise SweepValidationError(f"data {run_cfg.data!r}: {exc}") from None
    try:
        build_model(run_cfg.replace(device="cpu"), data)
    except ValueError as exc:
        raise SweepValidationError(f"configuration does not fit the data {data.name}: {exc}") from None
    return data


def connect(address: str = "", num_cpus: int = 0) -> dict[str, float]:
    """Join a Ray cluster (address given / in ``$RAY_ADDRESS``) or start a local one.

    Joining passes no resource arguments (Ray refuses them when connecting). Outside a submitted
    job the repository is shipped as the job's working dir so cluster workers can import it; a
    local Ray instead gets the repository on its workers' PYTHONPATH (they start in the driver's
    cwd with only the script's folder on ``sys.path``).
    """
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS", "")
        if address:
            kwargs: dict[str, Any] = {}
            if "RAY_JOB_CONFIG_JSON_ENV_VAR" not in os.environ:  # not under `ray job submit`
                kwargs["runtime_env"] = {"working_dir": REPO_ROOT,
                                         "excludes": ["runs/", "*.db", "mlruns/", "mlartifacts/"]}
            ray.init(address=address, **kwargs)
        else:
            paths = [REPO_ROOT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
            os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
            ray.init(address="local", num_cpus=num_cpus or None, include_dashboard=False)
    return dict(ray.cluster_resources())


def check_resources(res: TrialResources) -> None:
    """Refuse a trial shape that no alive node can hold (trials would stay PENDING forever)."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    for node in nodes:
        have = node.get("Resources", {})
        if have.get("CPU", 0) >= res.cpu and have.get("GPU", 0) >= res.gpu:
            return
    total = ray.cluster_resources()
    raise SweepValidationError(
        f"no node of the Ray cluster can hold one trial of {res.cpu:g} CPU and {res.gpu:g} GPU "
        f"(cluster: {total.get('CPU', 0):g} CPU, {total.get('GPU', 0):g} GPU over {len(nodes)} "
        f"node(s)); lower --cpus-per-trial / --gpus-per-trial or add nodes")


def share_dataset(data: "MSADataset | DatasetRef") -> DatasetRef:
    """Put the dataset in the object store once (zero-copy NumPy reads in every trial)."""
    if isinstance(data, DatasetRef):
        return data
    return DatasetRef(ref=ray.put(data), name=data.name)


# =============================================================================================
# fault injection (tests): "trial=*,epoch=2,times=1,marker=/tmp/dir[;...]"


@dataclass(frozen=True)
class FaultSpec:
    """Raise `InjectedFault` in one trial at `epoch`, `times` times over its attempts (-1 = always).

    The trial is the first whose run key ends with `trial` (``*`` = any) to reach `epoch`; it
    claims the fault with a file in `marker`, which also counts the attempts, so the choice
    survives retries and restores. Several specs are separated by ``;``.
    """

    trial: str
    epoch: int
    times: int
    marker: str

    @classmethod
    def parse(cls, text: str) -> "list[FaultSpec]":
        specs = []
        for part in (p for p in text.split(";") if p.strip()):
            kv = dict(item.split("=", 1) for item in part.split(",") if item)
            specs.append(cls(trial=kv.get("trial", "*"), epoch=int(kv.get("epoch", 1)),
                             times=int(kv.get("times", 1)), marker=kv["marker"]))
        return specs

    def fires(self, key: str, epoch: int) -> bool:
        if epoch != self.epoch or not (self.trial == "*" or key.endswith(self.trial)):
            return False
        os.makedirs(self.marker, exist_ok=True)
        claim = os.path.join(self.marker, "claimed-by")
        try:
            fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            with os.fdopen(fd, "w") as f:
                f.write(key)
        except FileExistsError:
            with open(claim) as f:
                if f.read().strip() != key:
                    return False
        n = 0
        while self.times < 0 or n < self.times:
            try:
                os.close(os.open(os.path.join(self.marker, f"attempt-{n}"), os.O_CREAT | os.O_EXCL))
                return True
            except FileExistsError:
                n += 1
        return False


class InjectedFault(RuntimeError):
    """Raised by a test's fault injection."""


# =============================================================================================
# the trainable


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


def _trial_dirname(trial: Any) -> str:
    return f"trial_{trial.trial_id}"


def _trial_key(trial: Any) -> str:
    run = trial.config.get("_run") if isinstance(trial.config, dict) else None
    return run["key"] if run else trial.trial_id


def _error_text(trial: Any) -> str:
    path = getattr(trial, "error_file", None)
    try:
        if path and os.path.exists(path):
            with open(path) as f:
                text = f.read()
            return text[-4000:]
    except OSError:
        pass
    return "trial failed (no error file)"


# =============================================================================================
# driver-side MLflow statuses


class StatusCallback(tune.Callback):
    """Sets every child run's final status from the driver, as trials end.

    FINISHED (with ``stop_reason``/``stopped_early`` tags; an ASHA-stopped trial is FINISHED with
    ``stopped_early=true, stop_reason=scheduler``) or FAILED with the error text in the ``error``
    tag. Errors here are logged, never raised: bookkeeping must not kill the sweep. (No
    ``on_experiment_end`` pass: after Ctrl-C Tune marks interrupted trials TERMINATED there;
    `_reconcile` does that pass after a *complete* ``fit`` instead.)
    """

    def __init__(self, target: TrackingTarget, max_epochs: int) -> None:
        self.target = target
        self.max_epochs = max_epochs
        self.tracker = Tracker(target.tracking_uri)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, error=None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, error=_error_text(trial))

    def _finish(self, trial: Any, *, error: str | None) -> None:
        try:
            _finish_trial(self.tracker, self.target, trial, error=error,
                          max_epochs=self.max_epochs)
        except Exception as exc:  # noqa: BLE001 - reconciled again after fit
            log.warning("could not set the MLflow status of trial %s: %s", trial.trial_id, exc)


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
            log.warning("could not snapshot the Tune state of %s: %s",
                        self.backup.experiment_dir, exc)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._run()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._run()


def _restore_or_none(path: str, trainable: Any) -> Any:
    """``Tuner.restore`` of `path` after repairing truncated state files; None if nothing to restore."""
    repair(path)
    if not tune.Tuner.can_restore(path):
        return None
    return tune.Tuner.restore(path, trainable=trainable, resume_errored=True)


def _reconcile(tracker: Tracker, target: TrackingTarget, grid: Any, max_epochs: int) -> None:
    """After a complete fit: give every child still open the status its trial ended with.

    Covers trials whose callback never ran (the driver died between a trial's end and the
    callback, then the experiment was restored with that trial already TERMINATED).
    """
    for res in grid:
        config = res.config or {}
        key = config["_run"]["key"] if "_run" in config else (res.metrics or {}).get("trial_id")
        if not key:
            continue
        run = tracker.find_child(target.experiment_id, target.parent_run_id, key)
        if run is None or run.info.status in TERMINAL_STATUSES:
            continue
        if res.error is not None:
            tracker.finish(run.info.run_id, "FAILED",
                           tags={"error": str(res.error)[-4000:], "stopped_early": "false"})
        else:
            reason = obj.stop_reason(res.metrics or {}, max_epochs)
            tracker.finish(run.info.run_id, "FINISHED", tags={
                "stop_reason": reason, "stopped_early": str(reason != "max_epochs").lower()})


def _finish_trial(tracker: Tracker, target: TrackingTarget, trial: Any, *, error: str | None,
                  max_epochs: int) -> None:
    key = _trial_key(trial)
    run = tracker.find_child(target.experiment_id, target.parent_run_id, key)
    if run is None:
        if error is None:
            return
        # The trial failed before it could open its run: record it, so every trial has a child.
        spec = trial.config.get("_run") or {"name": "", "tags": {}, "config": trial.config}
        run_id, _ = tracker.child_run(
            experiment_id=target.experiment_id, parent_run_id=target.parent_run_id, run_key=key,
            run_name=spec["name"] or f"{target.tags.get('sweep_name', 'run')}-{key}",
            tags={**target.tags, "stage": spec["tags"].get("stage", "search"),
                  "trial_id": trial.trial_id, **spec["tags"]},
            params=flatten_params(spec["config"]))
    else:
        run_id = run.info.run_id
    if error is not None:
        tracker.finish(run_id, "FAILED", tags={"error": error, "stopped_early": "false"})
        return
    reason = obj.stop_reason(trial.last_result, max_epochs)
    tracker.finish(run_id, "FINISHED", tags={"stop_reason": reason,
                                             "stopped_early": str(reason != "max_epochs").lower()})


# =============================================================================================
# grids of explicit runs


def run_grid(runs: Sequence[GridRun], *, data: "MSADataset | DatasetRef", target: TrackingTarget,
             storage_path: str, name: str, resources: TrialResources = TrialResources(),
             max_concurrent: int = 0, max_failures: int = 2,
             post_train: Callable[..., Mapping[str, float]] | None = None,
             fault: str = "", verbose: int = 1) -> list[GridRunResult]:
    """Run explicit configurations as one Ray Tune grid; resumable; one MLflow child per run.

    Needs a connected Ray (`connect`). Returns one `GridRunResult` per run, in input order.
    A run whose child (same key under the same parent) already FINISHED is not run again
    (status SKIPPED, metrics read back from MLflow). The Tune experiment lives in
    ``<storage_path>/<name>``; re-running with the same runs restores it, a changed list of runs
    raises `SweepStateError`.
    """
    keys = [r.key for r in runs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"grid {name!r}: run keys must be unique, got {keys}")
    ensure_dir(storage_path)
    spec_path = os.path.join(storage_path, f"{name}.grid.json")
    specs = [{"key": r.key, "name": r.name or r.key, "tags": {k: str(v) for k, v in r.tags.items()},
              "config": r.config.to_dict()} for r in runs]
    digest = hashlib.sha256(json.dumps(specs, sort_keys=True).encode()).hexdigest()[:16]
    if os.path.exists(spec_path) and read_json(spec_path).get("hash") != digest:
        raise SweepStateError(
            f"grid {name!r} in {storage_path} was started with other runs; use a new name (or "
            f"remove {os.path.join(storage_path, name)} and {spec_path}) to run a different grid")
    write_json(spec_path, {"hash": digest, "runs": specs})

    tracker = Tracker(target.tracking_uri)
    done: dict[str, GridRunResult] = {}
    for r in runs:
        child = tracker.find_child(target.experiment_id, target.parent_run_id, r.key)
        if child is not None and child.info.status == "FINISHED":
            done[r.key] = _result_from_run(r.key, child)
    todo = [s for s in specs if s["key"] not in done]
    results: dict[str, GridRunResult] = dict(done)
    if todo:
        shared = share_dataset(data)
        context = _TrialContext(target=target, resources=resources, default_stage="grid",
                                fault=fault, post_train=post_train)
        trainable = _wrap(shared, context, resources)
        path = os.path.join(os.path.abspath(storage_path), name)
        max_epochs = max(r.config.max_epochs for r in runs)
        tuner = _restore_or_none(path, trainable)
        if tuner is None:
            tuner = tune.Tuner(
                trainable,
                param_space={"_run": tune.grid_search(todo)},
                tune_config=tune.TuneConfig(num_samples=1, reuse_actors=True,
                                            max_concurrent_trials=max_concurrent or None,
                                            trial_dirname_creator=_trial_dirname),
                run_config=_tune_run_config(name=name, storage_path=storage_path, target=target,
                                            max_epochs=max_epochs, max_failures=max_failures,
                                            verbose=verbose))
        grid = tuner.fit()
        _require_complete(grid, len(todo), f"grid {name!r}")
        _prune_superseded_checkpoints(grid)
        _reconcile(tracker, target, grid, max_epochs)
        for res in grid:
            spec = (res.config or {}).get("_run")
            if spec is None:
                continue
            results[spec["key"]] = _result_from_tune(spec["key"], res, tracker, target)
    _kill_keys(tracker, target, set(keys), f"grid {name} ended")
    out = []
    for r in runs:
        out.append(results.get(r.key) or GridRunResult(key=r.key, run_id=None, status="KILLED",
                                                       error="no Tune result"))
    return out


def _kill_keys(tracker: Tracker, target: TrackingTarget, keys: set[str], reason: str) -> None:
    for run in tracker.children(target.experiment_id, target.parent_run_id):
        if run.data.tags.get("run_key") in keys and run.info.status not in TERMINAL_STATUSES:
            tracker.finish(run.info.run_id, "KILLED", tags={"killed_reason": reason})


def _result_from_run(key: str, run: Any) -> GridRunResult:
    m = run.data.metrics
    return GridRunResult(
        key=key, run_id=run.info.run_id, status="SKIPPED",
        best_epoch=int(m["best_epoch"]) if "best_epoch" in m else None,
        epochs_run=int(m["epochs_run"]) if "epochs_run" in m else None,
        best_valid={k[len("best/valid/"):]: v for k, v in m.items() if k.startswith("best/valid/")},
        best_test={k[len("best/test/"):]: v for k, v in m.items() if k.startswith("best/test/")},
        metrics=dict(m))


def _result_from_tune(key: str, res: Any, tracker: Tracker, target: TrackingTarget) -> GridRunResult:
    child = tracker.find_child(target.experiment_id, target.parent_run_id, key)
    m = {k: v for k, v in (res.metrics or {}).items() if isinstance(v, (int, float))}
    status = child.info.status if child is not None else ("FAILED" if res.error else "KILLED")
    return GridRunResult(
        key=key, run_id=child.info.run_id if child is not None else None,
        status=status if status in TERMINAL_STATUSES else "KILLED",
        best_epoch=int(m["best_epoch"]) if "best_epoch" in m else None,
        epochs_run=int(m["epochs_run"]) if "epochs_run" in m else None,
        best_valid={k[len("best/valid/"):]: float(v) for k, v in m.items() if k.startswith("best/valid/")},
        best_test={k[len("best/test/"):]: float(v) for k, v in m.items() if k.startswith("best/test/")},
        metrics={k: float(v) for k, v in m.items()},
        checkpoint_path=res.checkpoint.path if res.checkpoint is not None else None,
        error=str(res.error)[-2000:] if res.error else None)


def _wrap(shared: DatasetRef, context: _TrialContext, resources: TrialResources) -> Any:
    """The same wrapped trainable for a new Tuner and for Tuner.restore."""
    fn = tune.with_parameters(_trainable, data=shared, context=context)
    return tune.with_resources(fn, {"cpu": resources.cpu, "gpu": resources.gpu})


def _tune_run_config(*, name: str, storage_path: str, target: TrackingTarget, max_epochs: int,
                     max_failures: int, verbose: int) -> Any:
    # num_to_keep forces an experiment snapshot at every checkpoint - wanted here (the searcher
    # state is saved often, so a killed driver loses little) - and Tune warns about it each time.
    # 2, not 1: Tune deletes the evicted checkpoint when it registers a new one, *before* the
    # snapshot naming the new one is uploaded; a driver killed in between left a state that
    # pointed at a deleted checkpoint with num_to_keep=1 ("does not exist on storage anymore").
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    return tune.RunConfig(
        name=name, storage_path=os.path.abspath(storage_path), verbose=verbose,
        failure_config=tune.FailureConfig(max_failures=max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        callbacks=[StatusCallback(target, max_epochs=max_epochs),
                   StateBackupCallback(os.path.join(storage_path, name))])


# =============================================================================================
# the sweep


@dataclass
class SweepResult:
    """What `run_sweep` returns (and prints)."""

    name: str
    sweep_dir: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    study_name: str
    best_config: dict[str, Any]
    best_trial_id: str
    best_objective: float
    search_trials: int
    final: list[GridRunResult] = field(default_factory=list)

    def summary(self) -> dict[str, dict[str, float]]:
        """Mean and std over the final seeds of every ``best/test/*`` metric."""
        rows = [r.best_test for r in self.final if r.status in ("FINISHED", "SKIPPED") and r.best_test]
        out: dict[str, dict[str, float]] = {}
        for key in sorted({k for r in rows for k in r}):
            vals = [r[key] for r in rows if key in r]
            out[key] = {"mean": statistics.fmean(vals),
                        "std": statistics.stdev(vals) if len(vals) > 1 else 0.0, "n": len(vals)}
        return out


def run_sweep(cfg: SweepConfig) -> SweepResult:
    """Validate, then search, then retrain the best configuration on the final seeds.

    Raises `SweepValidationError` / `SweepStateError` before anything is launched or recorded
    when the data, the configuration, the storage path or the resources are unusable.
    """
    space = SPACES[cfg.method]
    base = cfg.base_run_config()
    space_desc = space.describe(cfg.search_lr_dropout)
    config_hash = cfg.config_hash(space_desc)
    uri = cfg.resolved_tracking_uri()
    resources = TrialResources(cpu=cfg.cpus_per_trial, gpu=cfg.gpus_per_trial)
    mode = obj.mode_for(base.select_metric)

    # 1. everything that can fail before a trial exists
    ensure_dir(os.path.dirname(cfg.sweep_dir))  # the storage path (the sweep dir comes later)
    if uri.startswith("sqlite:///"):
        ensure_dir(os.path.dirname(uri[len("sqlite:///"):]) or ".")
    data = prepare_data(base)
    if data.name != data_name(cfg.data):
        log.warning("dataset name %r differs from the name derived from --data (%r)",
                    data.name, data_name(cfg.data))
    state = open_sweep_state(cfg.sweep_dir, name=cfg.name, config_hash=config_hash, tracking_uri=uri)
    connect(cfg.resolved_address(), cfg.num_cpus)
    check_resources(resources)

    # 2. MLflow: experiment per dataset, parent run per sweep
    tracker = Tracker(uri)
    experiment_id = tracker.experiment(data.name)
    parent_tags = {"method": cfg.method, "dataset": data.name, "sampler": cfg.sampler,
                   "sampler_seed": str(cfg.sampler_seed), "code_version": code_version(REPO_ROOT),
                   "config_hash": config_hash, "study_name": state.study_name,
                   "objective": f"best/valid/{base.select_metric} ({mode})",
                   "smoke": str(cfg.smoke).lower(), "sweep_dir": cfg.sweep_dir}
    parent_run_id = tracker.parent_run(experiment_id, name=cfg.name, kind="sweep", tags=parent_tags)
    state.parent_run_id = parent_run_id
    state.save()
    tracker.log_json(parent_run_id, {"method": cfg.method, "params": space_desc,
                                     "objective": obj.OBJECTIVE, "metric": f"best/valid/{base.select_metric}",
                                     "mode": mode, "sampler": cfg.sampler,
                                     "sampler_seed": cfg.sampler_seed,
                                     "asha": {"grace_period": cfg.asha_grace_period,
                                              "reduction_factor": cfg.asha_reduction_factor,
                                              "max_t": base.max_epochs},
                                     "num_samples": cfg.num_samples,
                                     "base_config": base.to_dict(), "sweep": cfg.describe()},
                     "search_space.json")
    target = TrackingTarget(tracking_uri=uri, experiment_id=experiment_id, parent_run_id=parent_run_id,
                            tags={"sweep_name": cfg.name, "method": cfg.method, "dataset": data.name})
    shared = share_dataset(data)
    status = "FAILED"
    try:
        # 3. search
        best_path = os.path.join(cfg.sweep_dir, BEST_CONFIG_FILE)
        if "search" in state.stages_done and os.path.exists(best_path):
            best = read_json(best_path)
            n_search = best.get("search_trials", cfg.num_samples)
        else:
            best, n_search = _search(cfg, base=base, mode=mode, shared=shared, target=target,
                                     resources=resources, study_name=state.study_name,
                                     journal=state.journal_path, tracker=tracker)
            best["search_trials"] = n_search
            write_json(best_path, best)
            tracker.log_json(parent_run_id, best, BEST_CONFIG_FILE)
            tracker.set_tags(parent_run_id, {"best_trial_id": best["trial_id"],
                                             "best_objective": f"{best['objective']:.6g}"})
            state.mark_done("search")

        # 4. final stage: the best configuration on every final seed, no scheduler
        from mmsa_core.config import RunConfig

        best_cfg = RunConfig.from_dict(best["config"], source=BEST_CONFIG_FILE)
        runs = [GridRun(key=f"final-seed{s}", config=best_cfg.replace(seed=s),
                        tags={"stage": "final", "seed": str(s), "source_trial_id": best["trial_id"]},
                        name=f"{cfg.name}-final-seed{s}") for s in cfg.final_seeds]
        final = run_grid(runs, data=shared, target=target, storage_path=cfg.sweep_dir, name="final",
                         resources=resources, max_concurrent=cfg.max_concurrent,
                         max_failures=cfg.max_failures, fault=cfg.inject_fault, verbose=cfg.verbose)
        state.mark_done("final")
        result = SweepResult(name=cfg.name, sweep_dir=cfg.sweep_dir, tracking_uri=uri,
                             experiment_id=experiment_id, parent_run_id=parent_run_id,
                             study_name=state.study_name, best_config=best["config"],
                             best_trial_id=best["trial_id"], best_objective=best["objective"],
                             search_trials=n_search, final=final)
        tracker.log_json(parent_run_id, {"seeds": list(cfg.final_seeds), "test": result.summary(),
                                         "runs": [dataclasses.asdict(r) for r in final]},
                         "final_summary.json")
        status = "FINISHED"
        return result
    except KeyboardInterrupt:  # SweepInterrupted included
        status = "KILLED"
        raise
    finally:
        with contextlib.suppress(Exception):
            tracker.kill_leftovers(experiment_id, parent_run_id, reason=f"sweep ended ({status})")
        with contextlib.suppress(Exception):
            tracker.finish(parent_run_id, status)


def _search(cfg: SweepConfig, *, base: "RunConfig", mode: str, shared: DatasetRef,
            target: TrackingTarget, resources: TrialResources, study_name: str, journal: str,
            tracker: Tracker) -> tuple[dict[str, Any], int]:
    """The search stage; returns the best trial's record and the number of trials."""
    from ray.tune.schedulers import ASHAScheduler

    space = SPACES[cfg.method]
    context = _TrialContext(target=target, resources=resources, default_stage="search",
                            fault=cfg.inject_fault)
    trainable = _wrap(shared, context, resources)
    path = os.path.join(cfg.sweep_dir, "search")
    repair_journal(journal)
    tuner = _restore_or_none(path, trainable)
    if tuner is not None:
        log.info("resuming the search stage from %s", path)
    else:
        searcher = _optuna_search(cfg, base=base, mode=mode, study_name=study_name, journal=journal)
        grace = min(cfg.asha_grace_period, base.max_epochs)
        scheduler = ASHAScheduler(time_attr=obj.EPOCH, max_t=base.max_epochs, grace_period=grace,
                                  reduction_factor=cfg.asha_reduction_factor)
        tuner = tune.Tuner(
            trainable, param_space=base.to_dict(),
            tune_config=tune.TuneConfig(metric=obj.OBJECTIVE, mode=mode, search_alg=searcher,
                                        scheduler=scheduler, num_samples=cfg.num_samples,
                                        max_concurrent_trials=cfg.max_concurrent or None,
                                        reuse_actors=True, trial_dirname_creator=_trial_dirname),
            run_config=_tune_run_config(name="search", storage_path=cfg.sweep_dir, target=target,
                                        max_epochs=base.max_epochs, max_failures=cfg.max_failures,
                                        verbose=cfg.verbose))
    grid = tuner.fit()
    _require_complete(grid, cfg.num_samples, f"the search stage of {cfg.name!r}")
    _prune_superseded_checkpoints(grid)
    _reconcile(tracker, target, grid, base.max_epochs)
    _close_ghost_trials(study_name, journal)
    _kill_stage(tracker, target, "search")
    best = None
    for res in grid:
        value = (res.metrics or {}).get(obj.OBJECTIVE)
        if res.error is not None or value is None or not math.isfinite(value):
            continue
        better = best is None or (value < best[0] if mode == "min" else value > best[0])
        if better:
            best = (value, res)
    if best is None:
        raise RuntimeError(f"sweep {cfg.name!r}: no search trial finished with a finite objective; "
                           f"see the FAILED child runs' 'error' tags in MLflow")
    value, res = best
    searched = {p.name: res.config[p.name] for p in space.params(cfg.search_lr_dropout)}
    return ({"trial_id": res.metrics.get("trial_id"), "objective": float(value),
             "metric": f"best/valid/{base.select_metric}", "mode": mode, "searched": searched,
             "config": {k: v for k, v in res.config.items() if k != "_run"}}, len(grid))


class JournalSafeOptunaSearch(OptunaSearch):
    """OptunaSearch that accepts results for a trial the journal has already finished.

    The journal is written at once (``tell``), Tune's snapshot of the searcher a step later. A
    driver killed in between is restored with that trial still live: Tune runs it on from its
    checkpoint and reports to an Optuna trial that is already COMPLETE, which raised
    ``UpdateFinishedTrialError`` and ended the sweep. The journal's first outcome stands.
    """

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        try:
            super().on_trial_result(trial_id, result)
        except UpdateFinishedTrialError:
            pass  # its outcome is already in the journal; intermediate values add nothing

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        try:
            super().on_trial_complete(trial_id, result=result, error=error)
        except UpdateFinishedTrialError:
            log.info("trial %s was already told to the Optuna journal before a restart; "
                     "keeping the journal's outcome", trial_id)


def _optuna_search(cfg: SweepConfig, *, base: "RunConfig", mode: str, study_name: str,
                   journal: str) -> Any:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    space = SPACES[cfg.method]
    if cfg.sampler == "gp":
        sampler = optuna.samplers.GPSampler(seed=cfg.sampler_seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=cfg.sampler_seed, multivariate=True,
                                             constant_liar=True)
    storage = JournalStorage(JournalFileBackend(journal))
    start = [space.start_point(base, cfg.search_lr_dropout)] if cfg.paper_start else None
    return JournalSafeOptunaSearch(space=space.define_by_run(cfg.search_lr_dropout), metric=obj.OBJECTIVE,
                        mode=mode, sampler=sampler, study_name=study_name, storage=storage,
                        points_to_evaluate=start)


def _close_ghost_trials(study_name: str, journal: str) -> None:
    """Fail Optuna trials left RUNNING by a driver killed between ``ask`` and a state save.

    Tune asks the restored searcher again for those slots, so the ghosts were never run; failing
    them keeps the journal honest (every trial finished) without adding a configuration.
    """
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    try:
        study = optuna.load_study(study_name=study_name,
                                  storage=JournalStorage(JournalFileBackend(journal)))
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study.tell(t.number, state=TrialState.FAIL)
    except Exception as exc:  # noqa: BLE001
        log.warning("could not close RUNNING trials of study %s: %s", study_name, exc)


def _kill_stage(tracker: Tracker, target: TrackingTarget, stage: str) -> None:
    for run in tracker.children(target.experiment_id, target.parent_run_id, stage=stage):
        if run.info.status not in TERMINAL_STATUSES:
            tracker.finish(run.info.run_id, "KILLED", tags={"killed_reason": f"{stage} stage ended"})


def print_result(result: SweepResult, stream: Any = None) -> None:
    """A short human summary of a finished sweep."""
    out = stream or sys.stdout
    print(f"\nsweep {result.name}: {result.search_trials} search trials, best trial "
          f"{result.best_trial_id} (objective {result.best_objective:.4f})", file=out)
    searched = {p.name for p in SPACES[result.best_config.get("method", "hscl")].params(True)}
    print("best configuration (searched fields): " + json.dumps(
        {k: result.best_config[k] for k in sorted(result.best_config) if k in searched}), file=out)
    summ = result.summary()
    if summ:
        n = max(v["n"] for v in summ.values())
        print(f"final stage, test metrics at the best validation epoch, mean ± std over {n} seed(s):",
              file=out)
        for key in ("mae", "corr", "acc2_non0", "f1_non0", "acc7"):
            if key in summ:
                print(f"  {key:<10} {summ[key]['mean']:.4f} ± {summ[key]['std']:.4f}", file=out)
    print(f"MLflow: {result.tracking_uri} (parent run {result.parent_run_id}); "
          f"Optuna journal: {os.path.join(result.sweep_dir, 'optuna_journal.log')}", file=out)

