"""A real MLflow SQLite store with known values, built once per test session.

Layout (experiment `mmsa-synthetic-mosi`, following docs/ARCHITECTURE.md "MLflow contract"):
- sweep `hscl-synthetic-s1` (method hscl, search_space.json artifact in the sweeps/ format): 8 FINISHED
  search trials with params / epochs_run / stop_reason / stopped_early, 1 FAILED trial; final stage
  of 5 seeds + 1 RUNNING run;
- sweep `hscl-synthetic-s0`: an older hscl sweep (2 final seeds) the method comparison must skip;
- sweep `l1-synthetic-s1` (method l1, no search_space.json): 5 final seeds;
- ablation `hscl-ablation`: variants full (reference, 5 seeds, robustness metrics), no_supcr_fusion
  (5 seeds + 1 FAILED), no_sim (4 seeds: 1115 missing, so 4 pairs).
Every `best/*` metric is first logged at step 1 with a decoy value, then at step 3 with the value
the tables must show (MLflow's latest value).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

METRIC_KEYS = ("mae", "corr", "acc7", "acc5", "acc2_has0", "f1_has0", "acc2_non0", "f1_non0")
SEEDS = (1111, 1112, 1113, 1114, 1115)
EXPERIMENT = "mmsa-synthetic-mosi"
DATASET = "synthetic-mosi"
RATES = (0.1, 0.3, 0.5)
CORRUPTIONS = ("frames-av", "stream-a")

# trial_id, omega1, omega2, tau, epochs_run, stop_reason (None: an untagged, older run), valid mae
SEARCH = (
    ("t0", 0.01, 0.1, 0.5, 20, "max_epochs", 0.92),
    ("t1", 0.1, 0.5, 0.3, 5, "scheduler", 1.10),
    ("t2", 0.003, 0.05, 0.7, 20, "max_epochs", 0.88),
    ("t3", 0.3, 0.01, 0.9, 10, "scheduler", 1.02),
    ("t4", 0.02, 0.2, 0.4, 14, "patience", 0.85),  # full fidelity only by its stop_reason
    ("t5", 0.5, 0.003, 0.2, 5, "scheduler", 1.20),
    ("t6", 0.005, 0.08, 0.6, 20, None, 0.83),  # untagged: full by epochs_run == max_epochs
    ("t7", 0.05, 0.3, 0.8, 20, None, 0.90),
)
SPACE = {"omega1": (1e-3, 1.0, True), "omega2": (1e-3, 1.0, True), "tau": (0.05, 1.0, True)}
MAX_EPOCHS = 20
BEST = SEARCH[6]


@dataclass
class Store:
    uri: str
    experiment_id: str
    parents: dict[str, str] = field(default_factory=dict)  # name -> run id
    # (group, seed) -> {metric: raw value}; group e.g. "final/hscl-synthetic-s1", "ablation/full"
    values: dict[tuple[str, int], dict[str, float]] = field(default_factory=dict)
    robust: dict[tuple[int, str, float, str], float] = field(default_factory=dict)  # (seed, corruption, rate, m)
    search_valid: dict[str, dict[str, float]] = field(default_factory=dict)

    def column(self, group: str, metric: str, seeds=SEEDS) -> dict[int, float]:
        return {s: self.values[(group, s)][metric] for s in seeds if (group, s) in self.values}


def _metrics(rng: np.random.Generator, base: dict[str, float], noise: float) -> dict[str, float]:
    out = {}
    for k, v in base.items():
        x = v + rng.normal(0, noise if k != "mae" else noise * 2)
        out[k] = float(np.clip(x, 0.0, 1.0)) if k != "mae" else float(abs(x))
    return out


def _base(acc: float, mae: float, corr: float) -> dict[str, float]:
    return {"mae": mae, "corr": corr, "acc7": acc - 0.40, "acc5": acc - 0.35, "acc2_has0": acc - 0.01,
            "f1_has0": acc - 0.012, "acc2_non0": acc, "f1_non0": acc - 0.002}


def build_store(root: Path) -> Store:
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment(EXPERIMENT, artifact_location=(root / "artifacts").as_uri())
    store = Store(uri, exp_id)
    rng = np.random.default_rng(20240601)
    clock = [int(time.time() * 1000) - 10_000_000]

    def tick() -> int:
        clock[0] += 1000
        return clock[0]

    def parent(name: str, kind: str, method: str) -> str:
        run = client.create_run(exp_id, start_time=tick(), run_name=name, tags={
            "kind": kind, "method": method, "dataset": DATASET, "sweep_name": name, "sampler": "tpe",
            "sampler_seed": "0", "code_version": "test", "config_hash": "abc123"})
        store.parents[name] = run.info.run_id
        return run.info.run_id

    def child(parent_id: str, name: str, *, tags: dict, params: dict, best_test: dict | None,
              best_valid: dict | None = None, extra: dict | None = None, status: str = "FINISHED") -> str:
        sweep_name = next(k for k, v in store.parents.items() if v == parent_id)
        all_tags = {"mlflow.parentRunId": parent_id, "dataset": DATASET, "sweep_name": sweep_name, **tags}
        run = client.create_run(exp_id, start_time=tick(), run_name=name, tags=all_tags)
        rid, ts = run.info.run_id, clock[0]
        decoy, final = [], []
        for prefix, vals in (("best/test/", best_test), ("best/valid/", best_valid)):
            for k, v in (vals or {}).items():
                decoy.append(Metric(prefix + k, v + 0.5, ts, 1))
                final.append(Metric(prefix + k, v, ts + 1, 3))
        final += [Metric(k, v, ts + 1, 3) for k, v in (extra or {}).items()]
        client.log_batch(rid, metrics=decoy, params=[Param(k, str(v)) for k, v in params.items()])
        client.log_batch(rid, metrics=final)
        if status != "RUNNING":
            client.set_terminated(rid, status, end_time=ts + 500)
        return rid

    def config(**over) -> dict:  # a few RunConfig fields, as sweeps/tracking.flatten_params logs them
        base = {"method": "hscl", "data": DATASET, "omega1": 0.01, "omega2": 0.1, "tau": 0.5, "batch_size": 128,
                "max_epochs": MAX_EPOCHS, "lr_text": 5e-05, "faithful": False, "disabled_losses": "[]",
                "modalities": "tav"}
        base.update(over)
        return base

    # --- sweep hscl-synthetic-s0 (older; the method comparison must skip it) ----------------------
    p0 = parent("hscl-synthetic-s0", "sweep", "hscl")
    for seed in SEEDS[:2]:
        vals = _metrics(rng, _base(0.60, 1.30, 0.40), 0.01)
        store.values[("final/hscl-synthetic-s0", seed)] = vals
        child(p0, f"final-{seed}", tags={"stage": "final", "seed": str(seed), "method": "hscl"},
              params=config(seed=seed), best_test=vals, best_valid=vals, extra={"epochs_run": 20})

    # --- sweep hscl-synthetic-s1 ------------------------------------------------------------------
    p1 = parent("hscl-synthetic-s1", "sweep", "hscl")
    # the format sweeps/tune_runner.py writes
    client.log_text(p1, json.dumps({
        "method": "hscl", "objective": "objective", "metric": "best/valid/mae", "mode": "min",
        "params": [{"name": k, "low": lo, "high": hi, "log": log, "why": "", "distribution": "log-uniform"}
                   for k, (lo, hi, log) in SPACE.items()],
        "base_config": config()}), "search_space.json")
    for i, (tid, omega1, omega2, tau, epochs, reason, vmae) in enumerate(SEARCH):
        valid = _metrics(rng, _base(0.75, vmae, 0.6), 0.0)
        valid["mae"] = vmae
        store.search_valid[tid] = valid
        tags = {"stage": "search", "trial_id": tid, "seed": str(5000 + i), "method": "hscl"}
        if reason is not None:
            tags.update(stop_reason=reason, stopped_early=str(reason != "max_epochs").lower())
        else:
            tags.update(stopped_early="false")
        child(p1, f"trial-{tid}", tags=tags, params=config(omega1=omega1, omega2=omega2, tau=tau, seed=5000 + i),
              best_test=_metrics(rng, _base(0.74, vmae + 0.05, 0.6), 0.01), best_valid=valid,
              extra={"epochs_run": epochs, "best_epoch": max(1, epochs - 3)})
    child(p1, "trial-t8", tags={"stage": "search", "trial_id": "t8", "seed": "5008", "method": "hscl",
                                "stopped_early": "false"},
          params=config(omega1=0.9, omega2=0.9, tau=0.9, seed=5008), best_test=None,
          extra={"epochs_run": 2}, status="FAILED")
    _, omega1, omega2, tau, *_ = BEST
    for seed in SEEDS:
        vals = _metrics(rng, _base(0.78, 0.85, 0.62), 0.012)
        store.values[("final/hscl-synthetic-s1", seed)] = vals
        child(p1, f"final-{seed}", tags={"stage": "final", "seed": str(seed), "method": "hscl",
                                         "stopped_early": "false"},
              params=config(omega1=omega1, omega2=omega2, tau=tau, seed=seed), best_test=vals,
              best_valid=vals, extra={"epochs_run": 20})
    child(p1, "final-1116", tags={"stage": "final", "seed": "1116", "method": "hscl"},
          params=config(omega1=omega1, omega2=omega2, tau=tau, seed=1116),
          best_test=_metrics(rng, _base(0.1, 3.0, 0.0), 0.0), status="RUNNING")

    # --- sweep l1-synthetic-s1 (second method) ----------------------------------------------------
    p2 = parent("l1-synthetic-s1", "sweep", "l1")
    for seed in SEEDS:
        vals = _metrics(rng, _base(0.74, 0.93, 0.55), 0.015)
        store.values[("final/l1-synthetic-s1", seed)] = vals
        child(p2, f"final-{seed}", tags={"stage": "final", "seed": str(seed), "method": "l1"},
              params=config(method="l1", seed=seed), best_test=vals, best_valid=vals, extra={"epochs_run": 20})

    # --- ablation hscl-ablation -------------------------------------------------------------------
    pa = parent("hscl-ablation", "ablation", "hscl")
    variants = {
        "full": (_base(0.78, 0.85, 0.62), SEEDS, "[]"),
        "no_supcr_fusion": (_base(0.75, 0.90, 0.58), SEEDS, '["supcr_fusion"]'),
        "no_sim": (_base(0.779, 0.851, 0.62), SEEDS[:4], '["sim_ta", "sim_tv"]'),
    }
    for variant, (base, seeds, disabled) in variants.items():
        for seed in seeds:
            # a shared per-seed offset makes the pairing matter (as with real seeds)
            vals = _metrics(rng, base, 0.006)
            store.values[(f"ablation/{variant}", seed)] = vals
            extra = {"epochs_run": 20}
            if variant == "full":
                for c in CORRUPTIONS:
                    for r in RATES:
                        for m in ("mae", "acc2_non0", "corr"):
                            v = vals[m] + (r * (0.4 if m == "mae" else -0.2) * (1.5 if c == "frames-av" else 1.0)
                                           + float(rng.normal(0, 0.01)))
                            store.robust[(seed, c, r, m)] = v
                            extra[f"robust/{c}/r{r:.2f}/test/{m}"] = v
            tags = {"stage": "ablation", "ablation": variant, "seed": str(seed), "method": "hscl"}
            if variant == "full":
                tags["reference"] = "true"
            child(pa, f"{variant}-{seed}", tags=tags, params=config(seed=seed, disabled_losses=disabled),
                  best_test=vals, best_valid=vals, extra=extra)
    child(pa, "no_supcr_fusion-1115-retry", tags={"stage": "ablation", "ablation": "no_supcr_fusion",
                                                  "seed": "1115", "method": "hscl"},
          params=config(seed=1115, disabled_losses='["supcr_fusion"]'),
          best_test=_metrics(rng, _base(0.1, 3.0, 0.0), 0.0), status="FAILED")
    for pid in store.parents.values():
        client.set_terminated(pid, "FINISHED")
    return store


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    return build_store(tmp_path_factory.mktemp("mlflow"))


@pytest.fixture(scope="session")
def built(store: Store, tmp_path_factory: pytest.TempPathFactory):
    """The full report (sweep + ablation + methods), default options, artifacts logged."""
    from reports.build import build_report

    out = tmp_path_factory.mktemp("report")
    return build_report(tracking_uri=store.uri, experiment=EXPERIMENT, sweeps=["hscl-synthetic-s1"],
                        ablations=["hscl-ablation"], methods=True, out_dir=out)
