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
from sweeps import compat, storage
from sweeps import objective as obj
from sweeps.checkpoints import drop_checkpoints
from sweeps.child_status import kill_unfinished
from sweeps.cluster import DatasetRef, SweepValidationError, prepare_data, share_dataset
from sweeps.config import HASH_EXCLUDED, GridRun, SweepConfig, SweepResult, TrackingTarget, auto_preset, data_name
from sweeps.console import TrialConsole, resources_text
from sweeps.grid import run_grid
from sweeps.preflight import redact_uri
from sweeps.runtime_options import OPTUNA_RDB_SCHEMES
from sweeps.lifecycle import connect_checked, parent_run, prepare_storage
from sweeps.placement import gpu_failure
from sweeps.spaces import SPACES, define_by_run_for
from sweeps.stage import Stage
from sweeps.state import (BEST_CONFIG_FILE, SEARCH_RESULT_FILE, STATE_FILE, SweepState, extension_room,
                          open_sweep_state, peek_format, read_json, repair_journal, write_json)
from sweeps.tracking import Tracker
from sweeps.trial import TrialContext
from sweeps.tune_objects import JournalSafeOptunaSearch

if TYPE_CHECKING:
    from mmsa_core.config import RunConfig

log = logging.getLogger("sweeps")

# An extension's sampler seed: another stream of draws than the first stage's (a RandomSampler with
# the first seed would propose the first stage's configurations again).
EXTENSION_SEED_STEP = 7919


@dataclasses.dataclass(frozen=True)
class SearchPart:
    """One search stage, one Tune experiment: the sweep's first, or an extension's (`sweeps.state.extend`)."""

    name: str  # the Tune experiment under the sweep directory: search, search-ext1, ...
    num_samples: int  # trials this stage may start
    budget_epochs: int  # epochs its trials may train (0 = no budget)
    paper_start: bool  # the preset's loss weights first (the first stage only)
    sampler_seed: int


def run_sweep(cfg: SweepConfig) -> SweepResult:
    """Validate, then search, re-rank the best configurations on new seeds, and retrain the winner
    on the final seeds.

    Raises `SweepValidationError` / `SweepStateError` before anything is launched or recorded
    when the data, the configuration, the storage path or the resources are unusable.
    """
    older = compat.resume_settings(peek_format(cfg.sweep_dir))
    if any(getattr(cfg, k) != v for k, v in older.items()):
        log.warning("sweep %r was started by an older mmsa-sweeps: it resumes as it was started (%s)", cfg.name,
                    ", ".join(f"{k}={v}" for k, v in older.items()))
        cfg = cfg.replace(**older)
    space = SPACES[cfg.method]
    base = cfg.base_run_config()
    uri = cfg.resolved_tracking_uri()
    runtime = cfg.runtime
    resources = runtime.trial_resources((cfg.method,), base.text_encoder)

    # 1. everything that can fail before a trial exists
    prepare_storage(runtime.storage_root, uri)  # the storage path (the sweep dir comes later)
    data = prepare_data(base)
    preset = auto_preset(cfg, data.audio_dim, data.vision_dim)
    if preset != cfg.dataset_preset:  # --preset auto, and the widths say otherwise than the name
        log.warning("--preset auto: %s has %s's feature widths (acoustic %d, visual %d), which its name does not "
                    "say: the sweep trains with the %s preset", data.name, preset.upper(), data.audio_dim,
                    data.vision_dim, preset)
        cfg = cfg.replace(preset=preset)
        base = cfg.base_run_config()
    space_desc = space.describe(cfg.search_lr_dropout)
    config_hash = cfg.config_hash(space_desc)
    mode = obj.mode_for(base.select_metric)
    if data.name != data_name(cfg.data):
        log.warning("dataset name %r differs from the name derived from --data (%r)",
                    data.name, data_name(cfg.data))
    fresh = not storage.exists(storage.join(cfg.sweep_dir, STATE_FILE))
    legacy = compat.legacy_config_hash(cfg, space_desc, excluded=HASH_EXCLUDED,
                                       hscl_preset=_hscl_preset(cfg.dataset_preset))
    state = open_sweep_state(cfg.sweep_dir, name=cfg.name, config_hash=config_hash, tracking_uri=uri,
                             legacy_hashes=(legacy,), config=cfg.hashed(space_desc))
    try:
        connect_checked(runtime.resolved_address(), runtime.num_cpus, resources, runtime.num_gpus)
    except SweepValidationError:  # resources no node can hold: leave no trace of a sweep that never ran
        if fresh:
            with contextlib.suppress(OSError):
                storage.delete(storage.join(cfg.sweep_dir, STATE_FILE))
                if not storage.is_uri(cfg.sweep_dir):
                    os.rmdir(cfg.sweep_dir)
        raise

    # 2. MLflow: experiment per dataset, parent run per sweep
    tracker = Tracker(uri)
    experiment_id = tracker.experiment(data.name)
    parent_tags = {Tag.METHOD: cfg.method, Tag.DATASET: data.name, "sampler": cfg.sampler,
                   "sampler_seed": str(cfg.sampler_seed), Tag.CONFIG_HASH: config_hash,
                   "study_name": state.study_name,
                   "objective": f"best/valid/{base.select_metric} ({mode})",
                   "smoke": str(cfg.smoke).lower(), "sweep_dir": cfg.sweep_dir,
                   "rerank": f"{cfg.rerank_top}x{cfg.rerank_seeds}" if cfg.reranks else "off",
                   "budget_epochs": str(cfg.budget_epochs)}
    sizes = "/".join(str(n) for n in data.sizes.values())
    budget = (f"an epoch budget of {cfg.budget_epochs} (at most {cfg.num_samples} trials)" if cfg.budget_epochs
              else f"{cfg.num_samples} trials")
    note = (f"{cfg.method} sweep on {data.name} (train/valid/test {sizes}): {budget}, Optuna "
            f"{cfg.sampler.upper()} + ASHA, up to {base.max_epochs} epochs, objective best/valid/{base.select_metric} "
            f"({mode}); " + (f"the best {cfg.rerank_top} re-ranked on {cfg.rerank_seeds} new seeds; " if cfg.reranks else "")
            + f"the winner retrained on seeds {','.join(map(str, cfg.final_seeds))}.")
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
                                         "num_samples": cfg.num_samples, "budget_epochs": cfg.budget_epochs,
                                         "rerank": {"top": cfg.rerank_top, "seeds": cfg.rerank_seeds},
                                         "base_config": base.to_dict(), "sweep": cfg.describe()},
                         "search_space.json")
        target = parent.target(method=cfg.method, dataset=data.name)
        shared = share_dataset(data)

        # 3. search (one stage, and one more per extension)
        if "search" in state.stages_done:
            search = read_search_result(cfg.sweep_dir)
        else:
            search = run_search(cfg, state, base=base, mode=mode, shared=shared, target=target,
                                journal=runtime.optuna_storage or state.journal_path, tracker=tracker)
            write_json(storage.join(cfg.sweep_dir, SEARCH_RESULT_FILE), search)
            state.mark_done("search")
        best_search = search["candidates"][0]
        metrics = {"search/best_objective": best_search["objective"], "search/trials": float(search["trials"]),
                   "search/epochs": float(search["epochs"])}
        if cfg.budget_epochs:
            metrics["search/budget_epochs"] = float(cfg.budget_epochs)

        # 4. re-rank: the best full-fidelity configurations again, on new seeds
        rerank: list[dict[str, Any]] = []
        winner = best_search
        if cfg.reranks:
            rerank, winner = rerank_stage(cfg, search, base=base, mode=mode, shared=shared, target=target,
                                          grid_name=f"rerank-ext{len(state.extensions)}" if state.extensions else "rerank")
            state.mark_done("rerank")
            row = next(r for r in rerank if r["trial_id"] == winner["trial_id"])
            metrics.update({"rerank/winner_mean": row["mean"], "rerank/winner_std": row["std"],
                            "rerank/optimism": row["optimism"]})
        best = {**winner, "metric": f"best/valid/{base.select_metric}", "mode": mode,
                "search_trials": search["trials"], "search_best": best_search["trial_id"], "rerank": rerank}
        write_json(storage.join(cfg.sweep_dir, BEST_CONFIG_FILE), best)
        tracker.log_json(parent_run_id, best, BEST_CONFIG_FILE)
        tracker.set_tags(parent_run_id, {Tag.BEST_TRIAL_ID: best["trial_id"],
                                         Tag.SEARCH_BEST_TRIAL_ID: best_search["trial_id"],
                                         "best_objective": f"{best['objective']:.6g}"})
        tracker.log_metrics(parent_run_id, metrics, step=0)
        described = note + " " + describe_selection(best_search, winner, rerank, base.select_metric)

        # 5. final stage: the winner on every final seed, no scheduler
        from mmsa_core.config import RunConfig

        best_cfg = RunConfig.from_dict(best["config"], source=BEST_CONFIG_FILE)
        # the plain keys belong to the first winner; an extension's new winner trains under its own
        owner = state.final_key_owner()
        prefix = "final" if owner in (None, best["trial_id"]) else f"final-{best['trial_id']}"
        runs = [GridRun(key=f"{prefix}-seed{s}", config=best_cfg.replace(seed=s),
                        tags={Tag.STAGE: "final", Tag.SEED: str(s), Tag.SOURCE_TRIAL_ID: best["trial_id"]},
                        name=f"{cfg.name}-{prefix}-seed{s}") for s in cfg.final_seeds]
        final = run_grid(runs, data=shared, target=target, storage_path=cfg.sweep_dir, name=prefix,
                         runtime=runtime, label="final")
        if state.extensions:
            supersede_final_runs(tracker, experiment_id, parent_run_id, winner=best["trial_id"])
        model_run = log_best_model(cfg.sweep_dir, final, tracker, parent_run_id, metric=base.select_metric, mode=mode,
                                   info={"sweep": cfg.name, "dataset": data.name, "dataset_digest": parent.dataset_digest,
                                         "sizes": dict(data.sizes)})
        state.mark_done("final")
        done = [r for r in final if r.status in ("FINISHED", "SKIPPED") and r.best_test]
        test = {k: [r.best_test[k] for r in done if k in r.best_test] for k in ("mae", "corr", "acc2_non0")}
        tracker.log_metrics(parent_run_id, {f"final/test/{k}": statistics.fmean(v) for k, v in test.items() if v},
                            step=0)
        parent.describe(described + f" Final test ({len(done)} seeds): " + ", ".join(
            f"{k} {statistics.fmean(v):.4f} ± {statistics.stdev(v) if len(v) > 1 else 0.0:.4f}"
            for k, v in test.items() if v) + ".")
        result = SweepResult(name=cfg.name, sweep_dir=cfg.sweep_dir, tracking_uri=uri,
                             experiment_id=experiment_id, parent_run_id=parent_run_id,
                             study_name=state.study_name, best_config=best["config"],
                             best_trial_id=best["trial_id"], best_objective=best["objective"],
                             search_trials=search["trials"], final=final, searched=dict(best.get("searched", {})),
                             rerank=rerank, search_best_trial_id=best_search["trial_id"],
                             search_best_objective=best_search["objective"], search_epochs=search["epochs"],
                             budget_epochs=cfg.budget_epochs, metric=base.select_metric, model_run_id=model_run,
                             optuna_storage=redact_uri(runtime.optuna_storage))
        tracker.log_json(parent_run_id, {"seeds": list(cfg.final_seeds), "test": result.summary(),
                                         "runs": [dataclasses.asdict(r) for r in final]},
                         "final_summary.json")
        if runtime.keep_checkpoints == "none":  # the best model is in MLflow by now
            drop_checkpoints(cfg.sweep_dir)
        return result


def log_best_model(sweep_dir: str, final: list[Any], tracker: Tracker, parent_run_id: str, *, metric: str,
                   mode: str, info: dict[str, Any]) -> str | None:
    """Log the final stage's best model (by validation) as the artifact ``model/`` of its run
    (`mmsa_core.saved_model`: safetensors weights + configuration), and name that run on the parent
    (tag ``best_model_run_id``). Returns the run id; None when no final run finished."""
    import tempfile

    from mmsa_core.saved_model import save_checkpoint_model
    from sweeps.checkpoints import find_run_checkpoint

    done = [r for r in final if r.status in ("FINISHED", "SKIPPED") and r.run_id and metric in r.best_valid]
    if not done:
        return None
    best = (min if mode == "min" else max)(done, key=lambda r: r.best_valid[metric])
    if not tracker.has_artifact(best.run_id, "model"):
        local = not storage.is_uri(sweep_dir)
        ckpt = best.checkpoint_path if local and best.checkpoint_path and os.path.isdir(best.checkpoint_path) else None
        ckpt = ckpt or find_run_checkpoint(sweep_dir, best.run_id)
        if ckpt is None:
            log.warning("no checkpoint of the final run %s under %s: its model is not logged", best.run_id, sweep_dir)
            return None
        with tempfile.TemporaryDirectory(prefix="mmsa-model-") as d, storage.local_copy(ckpt) as ckpt_dir:
            save_checkpoint_model(ckpt_dir, d, info={**info, "mlflow_run_id": best.run_id})
            tracker.log_artifacts(best.run_id, d, "model")
    tracker.set_tags(parent_run_id, {"best_model_run_id": best.run_id})
    return best.run_id


def read_search_result(sweep_dir: str, path: str | None = None) -> dict[str, Any]:
    """The search's outcome of a sweep that finished it before (`path`: one search stage's file;
    0.1.x sweeps: their best_config.json)."""
    path = path or storage.join(sweep_dir, SEARCH_RESULT_FILE)
    if storage.exists(path):
        result = read_json(path)
        for c in result["candidates"]:
            c["config"] = compat.upgrade_config(c["config"], source=path)
        return result
    best_path = storage.join(sweep_dir, BEST_CONFIG_FILE)
    best = read_json(best_path)
    best["config"] = compat.upgrade_config(best["config"], source=best_path)
    return {"trials": best.get("search_trials", 0), "epochs": 0, "candidates": [{**best, "full_fidelity": True}]}


def rerank_stage(cfg: SweepConfig, search: dict[str, Any], *, base: "RunConfig", mode: str, shared: DatasetRef,
                 target: TrackingTarget, grid_name: str = "rerank") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Train the best `rerank_top` full-fidelity search configurations again on `rerank_seeds` new
    seeds (a resumable grid, children ``stage=rerank``); the winner has the best mean validation
    objective over its search run and its re-rank runs. Returns (one row per candidate, the winner).

    With fewer full-fidelity trials than `rerank_top` (ASHA stopped the others), the best stopped
    trials fill the list: re-ranking trains them to full length, and their mean leaves out their
    search value, which is of a lower fidelity (a pessimistic bound, not comparable)."""
    from mmsa_core.config import RunConfig

    full = [c for c in search["candidates"] if c.get("full_fidelity")]
    stopped = [c for c in search["candidates"] if not c.get("full_fidelity")]
    candidates = (full + stopped)[: cfg.rerank_top]
    seeds = cfg.rerank_seed_values(base.seed)
    runs = []
    for c in candidates:
        c_cfg = RunConfig.from_dict(c["config"], source=f"search trial {c['trial_id']}")
        for s in seeds:
            key = f"rerank-{c['trial_id']}-seed{s}"
            runs.append(GridRun(key=key, config=c_cfg.replace(seed=s), name=f"{cfg.name}-{key}",
                                tags={Tag.STAGE: "rerank", Tag.SEED: str(s), Tag.SOURCE_TRIAL_ID: str(c["trial_id"])}))
    results = run_grid(runs, data=shared, target=target, storage_path=cfg.sweep_dir, name=grid_name,
                       runtime=cfg.runtime, label="re-rank")
    metric = base.select_metric
    rows = []
    for c in candidates:
        mine = [r for run, r in zip(runs, results) if run.tags[Tag.SOURCE_TRIAL_ID] == str(c["trial_id"])]
        values = {int(run.tags[Tag.SEED]): r.best_valid.get(metric) for run, r in zip(runs, results)
                  if run.tags[Tag.SOURCE_TRIAL_ID] == str(c["trial_id"]) and r.status in ("FINISHED", "SKIPPED")}
        fresh = [v for v in values.values() if v is not None and math.isfinite(v)]
        every = [c["objective"], *fresh] if c.get("full_fidelity") or not fresh else fresh
        mean = statistics.fmean(every)
        sign = 1.0 if mode == "min" else -1.0
        rows.append({"trial_id": c["trial_id"], "searched": c.get("searched", {}), "search": c["objective"],
                     "full_fidelity": bool(c.get("full_fidelity")),
                     "seeds": {str(k): v for k, v in values.items()}, "mean": mean,
                     "std": statistics.stdev(every) if len(every) > 1 else 0.0, "n": len(every),
                     "optimism": sign * (statistics.fmean(fresh) - c["objective"]) if fresh else math.nan,
                     "failed": sum(r.status not in ("FINISHED", "SKIPPED") for r in mine)})
    usable = [r for r in rows if r["n"] > 1] or rows
    best_row = min(usable, key=lambda r: r["mean"]) if mode == "min" else max(usable, key=lambda r: r["mean"])
    winner = next(c for c in candidates if c["trial_id"] == best_row["trial_id"])
    return rows, {**winner, "objective": winner["objective"], "rerank_mean": best_row["mean"]}


def describe_selection(best_search: dict[str, Any], winner: dict[str, Any], rerank: list[dict[str, Any]],
                       metric: str) -> str:
    """The selection in words (the parent's description, the console)."""
    text = f"Best search trial {best_search['trial_id']}: validation {metric} {best_search['objective']:.4f}."
    if not rerank:
        return text
    row = next(r for r in rerank if r["trial_id"] == winner["trial_id"])
    first = next(r for r in rerank if r["trial_id"] == best_search["trial_id"])
    seeds = len(row["seeds"])
    text += (f" Re-ranked on {seeds} new seed(s): the search's best scores {first['mean']:.4f} ± {first['std']:.4f} "
             f"over its search run and the new seeds, so its search value was {first['optimism']:+.4f} optimistic")
    text += ("; it stays the winner." if row is first else
             f"; trial {winner['trial_id']} wins with {row['mean']:.4f} ± {row['std']:.4f}.")
    return text


def run_search(cfg: SweepConfig, state: SweepState, *, base: "RunConfig", mode: str, shared: DatasetRef,
               target: TrackingTarget, journal: str, tracker: Tracker) -> dict[str, Any]:
    """Every search stage of the sweep, merged: the first, then one per extension (each resumable,
    each on the same Optuna study, so TPE learns from every trial before it).

    An extension's stage may start what its extent has left after the stages before it
    (`sweeps.state.extension_room`, fixed when it first starts and kept in ``sweep.json``); it does
    not evaluate the paper configuration again and draws with its own sampler seed."""
    kw = dict(base=base, mode=mode, shared=shared, target=target, study_name=state.study_name, journal=journal,
              tracker=tracker)
    if not state.extensions:
        return search_stage(cfg, part=SearchPart("search", cfg.num_samples, cfg.budget_epochs, cfg.paper_start,
                                                  cfg.sampler_seed), **kw)
    parts: list[dict[str, Any]] = []
    for k, name in enumerate(state.search_stages()):
        path = storage.join(cfg.sweep_dir, f"{name}.result.json")
        if k == 0 and not storage.exists(path) and storage.exists(storage.join(cfg.sweep_dir, SEARCH_RESULT_FILE)):
            write_json(path, read_search_result(cfg.sweep_dir))  # it finished before the first extension
        if storage.exists(path):
            parts.append(read_search_result(cfg.sweep_dir, path))
            continue
        if k == 0:
            first = state.extensions[0]["from"]
            part = SearchPart("search", int(first["num_samples"]), int(first.get("budget_epochs") or 0),
                              cfg.paper_start, cfg.sampler_seed)
        else:
            ext = state.extensions[k - 1]
            if "added" not in ext:
                ext["added"] = extension_room(ext["to"], trials=sum(p["trials"] for p in parts),
                                              epochs=sum(p["epochs"] for p in parts)) or {"num_samples": 0,
                                                                                         "budget_epochs": 0}
                state.save()
            added = ext["added"]
            if not added["num_samples"]:
                log.info("sweep %r, %s: the search already reached %s; nothing to add", cfg.name, name, ext["to"])
                part_result: dict[str, Any] = {"trials": 0, "epochs": 0, "candidates": []}
                write_json(path, part_result)
                parts.append(part_result)
                continue
            part = SearchPart(name, int(added["num_samples"]), int(added["budget_epochs"]), False,
                              cfg.sampler_seed + EXTENSION_SEED_STEP * k)
            log.info("extending sweep %r: %s starts up to %d more trial(s)%s on study %s", cfg.name, name,
                     part.num_samples, f" within {part.budget_epochs} more epochs" if part.budget_epochs else "",
                     state.study_name)
        result = search_stage(cfg, part=part, require_candidates=(k == 0), **kw)
        write_json(path, result)
        parts.append(result)
    candidates = [c for p in parts for c in p["candidates"]]
    candidates.sort(key=lambda c: c["objective"], reverse=(mode == "max"))
    return {"trials": sum(p["trials"] for p in parts), "epochs": sum(p["epochs"] for p in parts),
            "candidates": candidates}


def supersede_final_runs(tracker: Tracker, experiment_id: str, parent_run_id: str, *, winner: str) -> None:
    """After an extension chose a new winner: the earlier winner's final runs stay in MLflow, retagged
    ``stage=superseded`` (``superseded_stage=final``), so that no table mixes two configurations."""
    for run in tracker.children(experiment_id, parent_run_id, stage="final"):
        if run.data.tags.get(Tag.SOURCE_TRIAL_ID) != winner:
            tracker.set_tags(run.info.run_id, {Tag.STAGE: "superseded", Tag.SUPERSEDED_STAGE: "final",
                                               Tag.SUPERSEDED_BY: winner})


def search_stage(cfg: SweepConfig, *, part: SearchPart, base: "RunConfig", mode: str, shared: DatasetRef,
                 target: TrackingTarget, study_name: str, journal: str, tracker: Tracker,
                 require_candidates: bool = True) -> dict[str, Any]:
    """One search stage (`part`): ``{"trials", "epochs", "candidates"}``, every trial with a finite
    objective, best first (``trial_id``, ``objective``, ``full_fidelity`` — not stopped by ASHA —,
    ``epochs``, ``searched``, ``config``)."""
    from ray.tune.schedulers import ASHAScheduler

    runtime = cfg.runtime
    space = SPACES[cfg.method]
    resources = runtime.trial_resources((cfg.method,), base.text_encoder)
    grace = min(cfg.asha_grace_period, base.max_epochs)
    context = TrialContext(target=target, resources=resources, default_stage="search", fault=runtime.inject_fault,
                           trial_timeout=runtime.trial_timeout, verbose=runtime.verbose,
                           mlflow_wait=runtime.mlflow_wait)
    budget = f", budget {part.budget_epochs} epochs" if part.budget_epochs else ""
    console = TrialConsole(stage=part.name, total=part.num_samples, resources=resources_text(resources.cpu, resources.gpu, resources.memory_gb),
                           metric=base.select_metric, mode=mode, max_epochs=base.max_epochs, verbose=runtime.verbose,
                           searched=[p.name for p in space.params(cfg.search_lr_dropout)],
                           note=f"Optuna {cfg.sampler.upper()} + ASHA (grace {grace}, reduction "
                                f"{cfg.asha_reduction_factor}){budget}")
    # the search never re-runs an errored trial: Optuna has recorded it as FAIL, and a re-run that
    # then finished would leave MLflow and the study disagreeing
    stage = Stage(name=part.name, storage_path=cfg.sweep_dir, context=context, data=shared,
                  max_epochs=base.max_epochs, max_failures=runtime.max_failures, console=console,
                  resume_errored=False)
    if not journal.startswith(OPTUNA_RDB_SCHEMES):
        repair_journal(os.path.abspath(os.path.expanduser(journal)))

    def create(trainable: Any) -> Any:
        scheduler = ASHAScheduler(time_attr=obj.EPOCH, max_t=base.max_epochs, grace_period=grace,
                                  reduction_factor=cfg.asha_reduction_factor)
        searcher = optuna_search(cfg, base=base, mode=mode, study_name=study_name, journal=journal,
                                 paper_start=part.paper_start, sampler_seed=part.sampler_seed)
        if part.budget_epochs:
            searcher.set_epoch_budget(part.budget_epochs, base.max_epochs)
        return tune.Tuner(
            trainable, param_space=base.to_dict(),
            tune_config=stage.tune_config(metric=obj.OBJECTIVE, mode=mode, search_alg=searcher,
                                          scheduler=scheduler, num_samples=part.num_samples,
                                          max_concurrent_trials=runtime.max_concurrent or None),
            run_config=stage.run_config())

    tuner, restored = stage.tuner(create)
    if restored:
        log.info("resuming the search stage from %s", stage.path)
    # with an epoch budget the searcher ends the stage before num_samples (a cap): any count is whole
    grid = stage.fit(tuner, expected=0 if part.budget_epochs else part.num_samples,
                     what=f"the {part.name} stage of {cfg.name!r}")
    close_ghost_trials(study_name, journal)
    kill_unfinished(tracker, target, stage="search", reason="search stage ended")
    candidates = []
    epochs = 0
    for res in grid:
        m = res.metrics or {}
        epochs += int(m.get(obj.EPOCH, 0) or 0)
        value = m.get(obj.OBJECTIVE)
        if res.error is not None or value is None or not math.isfinite(value):
            continue
        config = compat.upgrade_config({k: v for k, v in res.config.items() if k != "_run"},
                                       source=f"the search stage of {cfg.name!r}")
        candidates.append({"trial_id": m.get("trial_id"), "objective": float(value),
                           "full_fidelity": obj.stop_reason(m, base.max_epochs) != "scheduler",
                           "epochs": int(m.get(obj.EPOCH, 0) or 0),
                           "searched": {p.name: config[p.name] for p in space.params(cfg.search_lr_dropout)
                                        if p.name in config},
                           "config": config})
    if not candidates and require_candidates:
        no_gpu = gpu_failure([res.error for res in grid])
        if no_gpu:
            raise SweepValidationError(f"sweep {cfg.name!r}: every search trial failed: {no_gpu}")
        raise SweepValidationError(f"sweep {cfg.name!r}: no search trial finished with a finite objective; "
                                   f"see the FAILED child runs' 'error' tags in MLflow")
    candidates.sort(key=lambda c: c["objective"], reverse=(mode == "max"))
    return {"trials": len(grid), "epochs": epochs, "candidates": candidates}


def optuna_search(cfg: SweepConfig, *, base: "RunConfig", mode: str, study_name: str, journal: str,
                  paper_start: bool | None = None, sampler_seed: int | None = None) -> Any:
    """The seeded Optuna searcher over the method's space, on the sweep's journal (or `journal`'s
    database); `paper_start` / `sampler_seed` default to the sweep's (an extension passes its own)."""
    import optuna

    space = SPACES[cfg.method]
    seed = cfg.sampler_seed if sampler_seed is None else sampler_seed
    if cfg.sampler == "gp":
        sampler = optuna.samplers.GPSampler(seed=seed)
    elif cfg.sampler == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    start_here = cfg.paper_start if paper_start is None else paper_start
    start = [space.start_point(base.to_dict(), cfg.search_lr_dropout)] if start_here else None
    return JournalSafeOptunaSearch(space=define_by_run_for(space, base.to_dict(), cfg.search_lr_dropout),
                                   metric=obj.OBJECTIVE, mode=mode, sampler=sampler,
                                   study_name=study_name, storage=optuna_storage(journal), points_to_evaluate=start)


def optuna_storage(where: str) -> Any:
    """The Optuna storage `where` names: a database URL (`OPTUNA_RDB_SCHEMES`), else a journal file."""
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend

    if where.startswith(OPTUNA_RDB_SCHEMES):
        return RDBStorage(where)
    return JournalStorage(JournalFileBackend(os.path.abspath(os.path.expanduser(where))))


def close_ghost_trials(study_name: str, journal: str) -> None:
    """Fail Optuna trials left RUNNING by a driver killed between ``ask`` and a state save.

    Tune asks the restored searcher again for those slots, so the ghosts were never run; failing
    them keeps the journal honest (every trial finished) without adding a configuration.
    """
    import optuna
    from optuna.trial import TrialState

    try:
        study = optuna.load_study(study_name=study_name, storage=optuna_storage(journal))
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study.tell(t.number, state=TrialState.FAIL)
    except Exception as exc:  # noqa: BLE001
        log.warning("could not close RUNNING trials of study %s: %s", study_name, exc)


def _hscl_preset(dataset: str) -> Any:
    from mmsa_core.config import RunConfig

    return RunConfig.paper("hscl", dataset)
