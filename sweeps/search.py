"""The sweep: Optuna search with ASHA, then the best configuration on the final seeds.

Why a module of its own: this is the only part of the sweep layer that knows Optuna (the
searcher, its journal, the ghost trials a killed driver leaves); the final stage is a plain grid
(`sweeps.grid.run_grid`) and the parent run's life is `sweeps.lifecycle`'s.

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

Tune pickles `JournalSafeOptunaSearch` into ``tuner.pkl`` and the searcher state;
`sweeps.tune_runner` re-exports it under its old path so that sweeps interrupted before the split
still restore.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from optuna.exceptions import UpdateFinishedTrialError
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from sweeps import interrupts
from sweeps import objective as obj
from sweeps.callbacks import _kill_stage, _reconcile
from sweeps.cluster import DatasetRef, SweepValidationError, prepare_data, share_dataset
from sweeps.config import GridRun, GridRunResult, SweepConfig, TrackingTarget, TrialResources, data_name
from sweeps.console import TrialConsole, resources_text
from sweeps.grid import (_prune_superseded_checkpoints, _require_complete, _restore_or_none,
                         _trial_dirname, _tune_run_config, run_grid)
from sweeps.lifecycle import connect_checked, parent_run, prepare_storage
from sweeps.spaces import SPACES, define_by_run_for
from sweeps.state import BEST_CONFIG_FILE, STATE_FILE, open_sweep_state, read_json, repair_journal, write_json
from sweeps.tracking import Tracker
from sweeps.trainable import _TrialContext, _wrap

if TYPE_CHECKING:
    from mmsa_core.config import RunConfig

log = logging.getLogger("sweeps")


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
    prepare_storage(os.path.dirname(cfg.sweep_dir), uri)  # the storage path (the sweep dir comes later)
    data = prepare_data(base)
    if data.name != data_name(cfg.data):
        log.warning("dataset name %r differs from the name derived from --data (%r)",
                    data.name, data_name(cfg.data))
    fresh = not os.path.exists(os.path.join(cfg.sweep_dir, STATE_FILE))
    state = open_sweep_state(cfg.sweep_dir, name=cfg.name, config_hash=config_hash, tracking_uri=uri,
                             legacy_hashes=(cfg.legacy_config_hash(space_desc),))
    try:
        connect_checked(cfg.resolved_address(), cfg.num_cpus, resources)
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
            parent.describe(note + f" Best search trial {best['trial_id']}: objective "
                                   f"{best['objective']:.4f}.")
            state.mark_done("search")

        # 4. final stage: the best configuration on every final seed, no scheduler
        from mmsa_core.config import RunConfig

        best_cfg = RunConfig.from_dict(best["config"], source=BEST_CONFIG_FILE)
        runs = [GridRun(key=f"final-seed{s}", config=best_cfg.replace(seed=s),
                        tags={"stage": "final", "seed": str(s), "source_trial_id": best["trial_id"]},
                        name=f"{cfg.name}-final-seed{s}") for s in cfg.final_seeds]
        final = run_grid(runs, data=shared, target=target, storage_path=cfg.sweep_dir, name="final",
                         resources=resources, max_concurrent=cfg.max_concurrent,
                         max_failures=cfg.max_failures, fault=cfg.inject_fault, verbose=cfg.verbose,
                         trial_timeout=cfg.trial_timeout)
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
                             search_trials=n_search, final=final)
        tracker.log_json(parent_run_id, {"seeds": list(cfg.final_seeds), "test": result.summary(),
                                         "runs": [dataclasses.asdict(r) for r in final]},
                         "final_summary.json")
        return result


def _search(cfg: SweepConfig, *, base: "RunConfig", mode: str, shared: DatasetRef,
            target: TrackingTarget, resources: TrialResources, study_name: str, journal: str,
            tracker: Tracker) -> tuple[dict[str, Any], int]:
    """The search stage; returns the best trial's record and the number of trials."""
    from ray.tune.schedulers import ASHAScheduler

    space = SPACES[cfg.method]
    context = _TrialContext(target=target, resources=resources, default_stage="search",
                            fault=cfg.inject_fault, trial_timeout=cfg.trial_timeout)
    trainable = _wrap(shared, context, resources)
    path = os.path.join(cfg.sweep_dir, "search")
    repair_journal(journal)
    tuner = _restore_or_none(path, trainable, resume_errored=False)
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
                                        verbose=cfg.verbose, console=TrialConsole(
                                            stage="search", total=cfg.num_samples,
                                            resources=resources_text(resources.cpu, resources.gpu),
                                            metric=base.select_metric, mode=mode,
                                            max_epochs=base.max_epochs, verbose=cfg.verbose,
                                            searched=[p.name for p in space.params(cfg.search_lr_dropout)],
                                            note=f"Optuna {cfg.sampler.upper()} + ASHA (grace "
                                                 f"{grace}, reduction {cfg.asha_reduction_factor})")))
    with interrupts.fit_scope():
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
