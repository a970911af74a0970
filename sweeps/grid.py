"""The grid API: an explicit list of runs as one resumable Ray Tune experiment.

Why a module of its own: this is the reusable "run these configurations on Ray Tune" layer the
final stage of a sweep and every study (`ablations.study`) build on; it knows nothing about Optuna.

``run_grid(runs, *, data, target, storage_path, name, ...) -> list[GridRunResult]``
    An explicit list of runs (`GridRun`: key, RunConfig, tags — e.g. variant × seed) as one Ray
    Tune grid with the same trainable as the search: per-epoch MLflow child runs under
    ``target.parent_run_id`` with the given tags, checkpoints, retries from the last checkpoint,
    driver-set final statuses, resume (``Tuner.restore`` of ``<storage_path>/<name>``; runs whose
    child already FINISHED are skipped). ``evaluation`` (a `sweeps.trial.TrialEvaluation`) runs
    inside the trial after training, on the runs it applies to (e.g. test-time robustness); its
    metrics go to the same child run. The stage's life is `sweeps.stage.Stage`'s.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any, Sequence

from ray import tune

from mmsa_core.record_names import BEST_EPOCH, EPOCHS_RUN, strip_best
from sweeps import storage
from sweeps.child_status import kill_unfinished
from sweeps.cluster import DatasetRef, SweepValidationError, share_dataset
from sweeps.config import GridRun, GridRunResult, TrackingTarget
from sweeps.console import TrialConsole, resources_text
from sweeps.objective import mode_for
from sweeps.placement import gpu_failure
from sweeps.runtime_options import RuntimeOptions, TrialResources
from sweeps.stage import Stage
from sweeps.state import SweepStateError, ensure_dir, read_json, write_json
from sweeps.tracking import TERMINAL_STATUSES, Tracker
from sweeps.trial import TrialContext, TrialEvaluation

if TYPE_CHECKING:
    from mmsa_core.data import MSADataset

log = logging.getLogger("sweeps")


def grid_resources(runtime: RuntimeOptions, runs: Sequence[GridRun]) -> "TrialResources":
    """One trial shape for the whole grid: the largest measured memory of its methods and encoders."""
    shapes = [runtime.trial_resources((r.config.method,), r.config.text_encoder) for r in runs]
    return max(shapes, key=lambda t: t.memory_gb) if shapes else runtime.trial_resources()


def grid_digest(specs: list[dict[str, Any]]) -> str:
    """The hash ``<name>.grid.json`` records of a grid's runs (a changed list is refused)."""
    return hashlib.sha256(json.dumps(specs, sort_keys=True).encode()).hexdigest()[:16]


def run_grid(runs: Sequence[GridRun], *, data: "MSADataset | DatasetRef", target: TrackingTarget,
             storage_path: str, name: str, runtime: RuntimeOptions = RuntimeOptions(),
             evaluation: TrialEvaluation | None = None, label: str = "") -> list[GridRunResult]:
    """Run explicit configurations as one Ray Tune grid; resumable; one MLflow child per run.

    Needs a connected Ray (`sweeps.cluster.connect`). Returns one `GridRunResult` per run, in input
    order. A run whose child (same key under the same parent) already FINISHED is not run again
    (status SKIPPED, metrics read back from MLflow). The Tune experiment lives in
    ``<storage_path>/<name>``; re-running with the same runs restores it, a changed list of runs
    raises `SweepStateError`. ``label`` names the stage on the console (default: `name`);
    `runtime` gives resources, retries, the trial time limit and verbosity. A grid whose every run
    failed for a GPU share without CUDA raises `SweepValidationError` with that cause (exit 2).
    """
    keys = [r.key for r in runs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"grid {name!r}: run keys must be unique, got {keys}")
    ensure_dir(storage_path)
    spec_path = storage.join(storage_path, f"{name}.grid.json")
    specs = [{"key": r.key, "name": r.name or r.key, "tags": {k: str(v) for k, v in r.tags.items()},
              "config": r.config.to_dict()} for r in runs]
    digest = grid_digest(specs)
    if storage.exists(spec_path) and read_json(spec_path).get("hash") != digest:
        raise SweepStateError(
            f"grid {name!r} in {storage_path} was started with other runs; use a new name (or "
            f"remove {storage.join(storage_path, name)} and {spec_path}) to run a different grid")
    write_json(spec_path, {"hash": digest, "runs": specs})

    tracker = Tracker(target.tracking_uri)
    done: dict[str, GridRunResult] = {}
    for r in runs:
        child = tracker.find_child(target.experiment_id, target.parent_run_id, r.key)
        if child is not None and child.info.status == "FINISHED":
            done[r.key] = result_from_run(r.key, child)
    todo = [s for s in specs if s["key"] not in done]
    results: dict[str, GridRunResult] = dict(done)
    no_gpu = None
    if todo:
        resources = grid_resources(runtime, runs)
        max_epochs = max(r.config.max_epochs for r in runs)
        context = TrialContext(target=target, resources=resources, default_stage="grid",
                               fault=runtime.inject_fault, evaluation=evaluation,
                               trial_timeout=runtime.trial_timeout, verbose=runtime.verbose,
                               mlflow_wait=runtime.mlflow_wait)
        console = TrialConsole(stage=label or name, total=len(todo),
                               resources=resources_text(resources.cpu, resources.gpu, resources.memory_gb),
                               metric=runs[0].config.select_metric, mode=mode_for(runs[0].config.select_metric),
                               max_epochs=max_epochs, verbose=runtime.verbose,
                               note=f"{len(done)} already finished" if done else "")
        stage = Stage(name=name, storage_path=storage_path, context=context, data=share_dataset(data),
                      max_epochs=max_epochs, max_failures=runtime.max_failures, console=console)
        tuner, _ = stage.tuner(lambda trainable: tune.Tuner(
            trainable, param_space={"_run": tune.grid_search(todo)},
            tune_config=stage.tune_config(num_samples=1, max_concurrent_trials=runtime.max_concurrent or None),
            run_config=stage.run_config()))
        grid = stage.fit(tuner, expected=len(todo), what=f"grid {name!r}")
        no_gpu = gpu_failure([res.error for res in grid])  # every run: a GPU share without CUDA
        for res in grid:
            spec = (res.config or {}).get("_run")
            if spec is None:
                continue
            results[spec["key"]] = result_from_tune(spec["key"], res, tracker, target)
    kill_unfinished(tracker, target, keys=keys, reason=f"grid {name} ended")
    if todo and no_gpu:
        raise SweepValidationError(f"{label or name}: every run failed: {no_gpu}")
    return [results.get(r.key) or GridRunResult(key=r.key, run_id=None, status="KILLED", error="no Tune result")
            for r in runs]


def result_from_run(key: str, run: Any) -> GridRunResult:
    """A FINISHED child's record as a SKIPPED result (it is not run again)."""
    m = run.data.metrics
    return GridRunResult(
        key=key, run_id=run.info.run_id, status="SKIPPED",
        best_epoch=int(m[BEST_EPOCH]) if BEST_EPOCH in m else None,
        epochs_run=int(m[EPOCHS_RUN]) if EPOCHS_RUN in m else None,
        best_valid=strip_best("valid", m), best_test=strip_best("test", m), metrics=dict(m))


def result_from_tune(key: str, res: Any, tracker: Tracker, target: TrackingTarget) -> GridRunResult:
    """A Tune result with its child run's final status."""
    child = tracker.find_child(target.experiment_id, target.parent_run_id, key)
    m = {k: v for k, v in (res.metrics or {}).items() if isinstance(v, (int, float))}
    status = child.info.status if child is not None else ("FAILED" if res.error else "KILLED")
    return GridRunResult(
        key=key, run_id=child.info.run_id if child is not None else None,
        status=status if status in TERMINAL_STATUSES else "KILLED",
        best_epoch=int(m[BEST_EPOCH]) if BEST_EPOCH in m else None,
        epochs_run=int(m[EPOCHS_RUN]) if EPOCHS_RUN in m else None,
        best_valid={k: float(v) for k, v in strip_best("valid", m).items()},
        best_test={k: float(v) for k, v in strip_best("test", m).items()},
        metrics={k: float(v) for k, v in m.items()},
        checkpoint_path=res.checkpoint.path if res.checkpoint is not None else None,
        error=str(res.error)[-2000:] if res.error else None)
