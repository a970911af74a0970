"""The sweep: Optuna search with ASHA, then the best configuration on the final seeds.

Why a module of its own: this is the only part of the sweep layer that knows Optuna (the
searcher, its journal, the ghost trials a killed driver leaves); the final stage is a plain grid
(`sweeps.grid.run_grid`), a stage's life is `sweeps.stage.Stage`'s and the parent run's
`sweeps.lifecycle`'s.

``run_sweep(cfg: SweepConfig) -> SweepResult``
    The whole sweep: validate → connect Ray → MLflow parent → search stage (OptunaSearch,
    define-by-run space, seeded TPE or GP, ASHA) → best configuration → final stage (the best
    configuration on ``cfg.final_seeds``, no scheduler). Re-running it with the same name resumes
    an interrupted sweep (``Tuner.restore``); a finished one is not run again.

Errors: `SweepValidationError` (bad data / configuration / resources, raised before anything is
launched), `sweeps.state.SweepStateError` (changed configuration on resume, unwritable storage),
`sweeps.resume_state.ResumeStateError` (a truncated ``tuner.pkl`` with no complete copy to restore;
other truncated state files are put back from the copies `StateBackupCallback` keeps),
`SweepInterrupted` (a KeyboardInterrupt: Ctrl-C stopped Tune; its state is saved, re-run to resume).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import statistics
from typing import TYPE_CHECKING, Any

from ray import tune

from mmsa_core.record_names import Tag
from sweeps import compat
from sweeps import objective as obj
from sweeps.child_status import kill_unfinished
from sweeps.cluster import DatasetRef, SweepValidationError, prepare_data, share_dataset
from sweeps.config import HASH_EXCLUDED, GridRun, SweepConfig, SweepResult, TrackingTarget, data_name
from sweeps.console import TrialConsole, resources_text
from sweeps.grid import run_grid
from sweeps.lifecycle import connect_checked, parent_run, prepare_storage
from sweeps.spaces import SPACES, define_by_run_for
from sweeps.stage import Stage
from sweeps.state import BEST_CONFIG_FILE, STATE_FILE, open_sweep_state, read_json, repair_journal, write_json
from sweeps.tracking import Tracker
from sweeps.trial import TrialContext
from sweeps.tune_objects import JournalSafeOptunaSearch

if TYPE_CHECKING:
    from mmsa_core.config import RunConfig

log = logging.getLogger("sweeps")


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
    runtime = cfg.runtime
    resources = runtime.trial_resources()
    mode = obj.mode_for(base.select_metric)

    # 1. everything that can fail before a trial exists
    prepare_storage(os.path.dirname(cfg.sweep_dir), uri)  # the storage path (the sweep dir comes later)
    data = prepare_data(base)
    if data.name != data_name(cfg.data):
        log.warning("dataset name %r differs from the name derived from --data (%r)",
                    data.name, data_name(cfg.data))
    fresh = not os.path.exists(os.path.join(cfg.sweep_dir, STATE_FILE))
    legacy = compat.legacy_config_hash(cfg, space_desc, excluded=HASH_EXCLUDED,
                                       hscl_preset=_hscl_preset(cfg.dataset_preset))
    state = open_sweep_state(cfg.sweep_dir, name=cfg.name, config_hash=config_hash, tracking_uri=uri,
                             legacy_hashes=(legacy,))
    try:
        connect_checked(runtime.resolved_address(), runtime.num_cpus, resources)
    except SweepValidationError:  # resources no node can hold: leave no trace of a sweep that never ran
        if fresh:
            with contextlib.suppress(OSError):
                os.remove(os.path.join(cfg.sweep_dir, STATE_FILE))
                os.rmdir(cfg.sweep_dir)
        raise

    # 2. MLflow: experiment per dataset, parent run per sweep
    tracker = Tracker(uri)
    experiment_id = tracker.experiment(data.name)
    parent_tags = {"method": cfg.method, "dataset": data.name, "sampler": cfg.sampler,
                   "sampler_seed": str(cfg.sampler_seed), "config_hash": config_hash,
                   "study_name": state.study_name,
                   "objective": f"best/valid/{base.select_metric} ({mode})",
                   "smoke": str(cfg.smoke).lower(), "sweep_dir": cfg.sweep_dir}
    sizes = "/".join(str(n) for n in data.sizes.values())
    note = (f"{cfg.method} sweep on {data.name} (train/valid/test {sizes}): {cfg.num_samples} trials, "
            f"Optuna {cfg.sampler.upper()} + ASHA, up to {base.max_epochs} epochs, objective "
            f"best/valid/{base.select_metric} ({mode}); best configuration retrained on seeds "
            f"{','.join(map(str, cfg.final_seeds))}.")
    with parent_run(tracker, experiment_id, name=cfg.name, kind="sweep", tags=parent_tags,
                    dataset=data, description=note) as parent:
        parent_run_id = parent.run_id
        state.parent_run_id = parent_run_id
        state.save()
        tracker.log_json(parent_run_id, {"method": cfg.method, "params": space_desc,
                                         "objective": obj.OBJECTIVE,
                                         "metric": f"best/valid/{base.select_metric}",
                                         "mode": mode, "sampler": cfg.sampler,
                                         "sampler_seed": cfg.sampler_seed,
                                         "asha": {"grace_period": cfg.asha_grace_period,
                                                  "reduction_factor": cfg.asha_reduction_factor,
                                                  "max_t": base.max_epochs},
                                         "num_samples": cfg.num_samples,
                                         "base_config": base.to_dict(), "sweep": cfg.describe()},
                         "search_space.json")
        target = parent.target(method=cfg.method, dataset=data.name)
        shared = share_dataset(data)

        # 3. search
        best_path = os.path.join(cfg.sweep_dir, BEST_CONFIG_FILE)
        if "search" in state.stages_done and os.path.exists(best_path):
            best = read_json(best_path)
            best["config"] = compat.upgrade_config(best["config"], source=best_path)
            n_search = best.get("search_trials", cfg.num_samples)
        else:
            best, n_search = search_stage(cfg, base=base, mode=mode, shared=shared, target=target,
                                          study_name=state.study_name, journal=state.journal_path,
                                          tracker=tracker)
            best["search_trials"] = n_search
            write_json(best_path, best)
            tracker.log_json(parent_run_id, best, BEST_CONFIG_FILE)
            tracker.set_tags(parent_run_id, {"best_trial_id": best["trial_id"],
                                             "best_objective": f"{best['objective']:.6g}"})
            parent.describe(note + f" Best search trial {best['trial_id']}: objective "
                                   f"{best['objective']:.4f}.")
            state.mark_done("search")

        # 4. final stage: the best configuration on every final seed, no scheduler
        from mmsa_core.config import RunConfig

        best_cfg = RunConfig.from_dict(best["config"], source=BEST_CONFIG_FILE)
        runs = [GridRun(key=f"final-seed{s}", config=best_cfg.replace(seed=s),
                        tags={Tag.STAGE: "final", Tag.SEED: str(s), "source_trial_id": best["trial_id"]},
                        name=f"{cfg.name}-final-seed{s}") for s in cfg.final_seeds]
        final = run_grid(runs, data=shared, target=target, storage_path=cfg.sweep_dir, name="final",
                         runtime=runtime)
        state.mark_done("final")
        done = [r for r in final if r.status in ("FINISHED", "SKIPPED") and r.best_test]
        test = {k: [r.best_test[k] for r in done if k in r.best_test] for k in ("mae", "corr", "acc2_non0")}
        parent.describe(note + f" Best search trial {best['trial_id']}: objective "
                        f"{best['objective']:.4f}. Final test ({len(done)} seeds): " + ", ".join(
                            f"{k} {statistics.fmean(v):.4f} ± {statistics.stdev(v) if len(v) > 1 else 0.0:.4f}"
                            for k, v in test.items() if v) + ".")
        result = SweepResult(name=cfg.name, sweep_dir=cfg.sweep_dir, tracking_uri=uri,
                             experiment_id=experiment_id, parent_run_id=parent_run_id,
                             study_name=state.study_name, best_config=best["config"],
                             best_trial_id=best["trial_id"], best_objective=best["objective"],
                             search_trials=n_search, final=final, searched=dict(best.get("searched", {})))
        tracker.log_json(parent_run_id, {"seeds": list(cfg.final_seeds), "test": result.summary(),
                                         "runs": [dataclasses.asdict(r) for r in final]},
                         "final_summary.json")
        return result


def search_stage(cfg: SweepConfig, *, base: "RunConfig", mode: str, shared: DatasetRef,
                 target: TrackingTarget, study_name: str, journal: str, tracker: Tracker) -> tuple[dict[str, Any], int]:
    """The search stage; returns the best trial's record and the number of trials."""
    from ray.tune.schedulers import ASHAScheduler

    runtime = cfg.runtime
    space = SPACES[cfg.method]
    resources = runtime.trial_resources()
    grace = min(cfg.asha_grace_period, base.max_epochs)
    context = TrialContext(target=target, resources=resources, default_stage="search", fault=runtime.inject_fault,
                           trial_timeout=runtime.trial_timeout, verbose=runtime.verbose,
                           mlflow_wait=runtime.mlflow_wait)
    console = TrialConsole(stage="search", total=cfg.num_samples, resources=resources_text(resources.cpu, resources.gpu),
                           metric=base.select_metric, mode=mode, max_epochs=base.max_epochs, verbose=runtime.verbose,
                           searched=[p.name for p in space.params(cfg.search_lr_dropout)],
                           note=f"Optuna {cfg.sampler.upper()} + ASHA (grace {grace}, reduction "
                                f"{cfg.asha_reduction_factor})")
    # the search never re-runs an errored trial: Optuna has recorded it as FAIL, and a re-run that
    # then finished would leave MLflow and the study disagreeing
    stage = Stage(name="search", storage_path=cfg.sweep_dir, context=context, data=shared,
                  max_epochs=base.max_epochs, max_failures=runtime.max_failures, console=console,
                  resume_errored=False)
    repair_journal(journal)

    def create(trainable: Any) -> Any:
        scheduler = ASHAScheduler(time_attr=obj.EPOCH, max_t=base.max_epochs, grace_period=grace,
                                  reduction_factor=cfg.asha_reduction_factor)
        return tune.Tuner(
            trainable, param_space=base.to_dict(),
            tune_config=stage.tune_config(metric=obj.OBJECTIVE, mode=mode,
                                          search_alg=optuna_search(cfg, base=base, mode=mode, study_name=study_name,
                                                                   journal=journal),
                                          scheduler=scheduler, num_samples=cfg.num_samples,
                                          max_concurrent_trials=runtime.max_concurrent or None),
            run_config=stage.run_config())

    tuner, restored = stage.tuner(create)
    if restored:
        log.info("resuming the search stage from %s", stage.path)
    grid = stage.fit(tuner, expected=cfg.num_samples, what=f"the search stage of {cfg.name!r}")
    close_ghost_trials(study_name, journal)
    kill_unfinished(tracker, target, stage="search", reason="search stage ended")
    best = None
    for res in grid:
        value = (res.metrics or {}).get(obj.OBJECTIVE)
        if res.error is not None or value is None or not math.isfinite(value):
            continue
        better = best is None or (value < best[0] if mode == "min" else value > best[0])
        if better:
            best = (value, res)
    if best is None:
        raise SweepValidationError(f"sweep {cfg.name!r}: no search trial finished with a finite objective; "
                                   f"see the FAILED child runs' 'error' tags in MLflow")
    value, res = best
    config = compat.upgrade_config({k: v for k, v in res.config.items() if k != "_run"},
                                   source=f"the search stage of {cfg.name!r}")
    searched = {p.name: config[p.name] for p in space.params(cfg.search_lr_dropout) if p.name in config}
    return ({"trial_id": res.metrics.get("trial_id"), "objective": float(value),
             "metric": f"best/valid/{base.select_metric}", "mode": mode, "searched": searched,
             "config": config}, len(grid))


def optuna_search(cfg: SweepConfig, *, base: "RunConfig", mode: str, study_name: str, journal: str) -> Any:
    """The seeded Optuna searcher over the method's space, on the sweep's journal."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    space = SPACES[cfg.method]
    if cfg.sampler == "gp":
        sampler = optuna.samplers.GPSampler(seed=cfg.sampler_seed)
    elif cfg.sampler == "random":
        sampler = optuna.samplers.RandomSampler(seed=cfg.sampler_seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=cfg.sampler_seed, multivariate=True,
                                             constant_liar=True)
    storage = JournalStorage(JournalFileBackend(journal))
    start = [space.start_point(base.to_dict(), cfg.search_lr_dropout)] if cfg.paper_start else None
    return JournalSafeOptunaSearch(space=define_by_run_for(space, base.to_dict(), cfg.search_lr_dropout),
                                   metric=obj.OBJECTIVE, mode=mode, sampler=sampler,
                                   study_name=study_name, storage=storage, points_to_evaluate=start)


def close_ghost_trials(study_name: str, journal: str) -> None:
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


def _hscl_preset(dataset: str) -> Any:
    from mmsa_core.config import RunConfig

    return RunConfig.paper("hscl", dataset)
