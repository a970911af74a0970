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
the tables must show (MLflow's latest value). Every run carries the synthetic data's dataset input
(digest `SYNTHETIC_DIGEST`, splits `SYNTHETIC_SPLITS`) as sweeps/tracking.py logs it.

`build_mosi_store` is a second store, on a real data file (`MOSI_FILE`), for the budget and the
method table: a 7-method comparison, a --smoke sweep that cut the file's splits, a robustness smoke.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
ASHA = {"grace_period": 4, "reduction_factor": 3, "max_t": MAX_EPOCHS}
SYNTHETIC_DIGEST = "5f3c0a9e1d2b4c68"
SYNTHETIC_SPLITS = (1284, 229, 686)


def log_dataset(client: Any, run_id: str, *, name: str, digest: str, source: str, source_type: str,
                splits: tuple[int, int, int], context: str) -> None:
    """A dataset input the way sweeps/tracking.py's Tracker.log_dataset writes it."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    sizes = dict(zip(("train", "valid", "test"), splits))
    ds = Dataset(name=name, digest=digest, source_type=source_type, source=json.dumps({"uri": source}),
                 schema=json.dumps({"splits": sorted(sizes)}),
                 profile=json.dumps({"num_rows": sum(splits), "splits": sizes}))
    client.log_inputs(run_id, datasets=[DatasetInput(ds, tags=[InputTag("mlflow.data.context", context)])])


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

    def dataset(run_id: str, context: str) -> None:
        log_dataset(client, run_id, name=DATASET, digest=SYNTHETIC_DIGEST, source=DATASET, source_type="synthetic",
                    splits=SYNTHETIC_SPLITS, context=context)

    def parent(name: str, kind: str, method: str) -> str:
        run = client.create_run(exp_id, start_time=tick(), run_name=name, tags={
            "kind": kind, "method": method, "dataset": DATASET, "sweep_name": name, "sampler": "tpe",
            "sampler_seed": "0", "code_version": "test", "config_hash": "abc123", "smoke": "false"})
        store.parents[name] = run.info.run_id
        dataset(run.info.run_id, kind)
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
        dataset(rid, tags.get("stage", "child"))
        if status != "RUNNING":
            client.set_terminated(rid, status, end_time=ts + 500)
        return rid

    def config(**over) -> dict:  # a few RunConfig fields, as sweeps/tracking.flatten_params logs them
        base = {"method": "hscl", "data": DATASET, "omega1": 0.01, "omega2": 0.1, "tau": 0.5, "batch_size": 128,
                "max_epochs": MAX_EPOCHS, "lr_text": 5e-05, "faithful": False, "disabled_losses": "[]",
                "modalities": "tav", "text_encoder": "minilm", "synthetic_train": 0, "synthetic_valid": 0,
                "synthetic_test": 0}
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
        "sampler": "tpe", "sampler_seed": 0, "asha": ASHA, "num_samples": len(SEARCH) + 1,
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


# --- a store on a real data file: budgets, like with like, degenerate predictions -------------------
MOSI_DATASET = "mosi_clean"
MOSI_EXPERIMENT = f"mmsa-{MOSI_DATASET}"
MOSI_FILE = "data/mosi_clean.pkl"
MOSI_DIGEST = "9a1f0c3e5b7d2468"
MOSI_SPLITS = (1284, 229, 686)  # the file's own sizes: what the comparison (nothing cut) loaded
SMOKE_SPLITS = (128, 64, 64)  # what --smoke cut the file to
SEVEN_METHODS = ("hscl", "l1", "hycon", "mmckd", "clfa", "selfmm", "shared_private")
COMPARE_SEEDS = (1111, 1112, 1113)
ROBUST_SMOKE_SEEDS = (111, 1111, 11111)
DEGENERATE_METHOD = "selfmm"  # predicts a constant: Corr 0, every sample in one class
CONSTANT_SHARES = {"acc7": 0.2100, "acc5": 0.2300, "acc2_has0": 0.4300, "acc2_non0": 0.4268}


@dataclass
class MosiStore:
    uri: str
    experiment_id: str
    parents: dict[str, str] = field(default_factory=dict)  # name -> run id
    values: dict[tuple[str, str, int], dict[str, float]] = field(default_factory=dict)  # (parent, method, seed)

    def column(self, parent: str, method: str, metric: str) -> dict[int, float]:
        return {s: v[metric] for (p, m, s), v in self.values.items() if p == parent and m == method}


def constant_prediction_metrics() -> dict[str, float]:
    """What a constant predictor scores: Corr 0 (the project's value when a side is constant), the
    accuracies are one class's share, the weighted F1 that of putting everything in that class."""
    a, b = CONSTANT_SHARES["acc2_non0"], CONSTANT_SHARES["acc2_has0"]
    return {"mae": 1.45, "corr": 0.0, **CONSTANT_SHARES, "f1_non0": 2 * a * a / (1 + a), "f1_has0": 2 * b * b / (1 + b)}


def build_mosi_store(root: Path) -> MosiStore:
    """Experiment `mmsa-mosi_clean`, oldest first:
    - comparison `compare-mosi`: the 7 methods × seeds 1111–1113, 6 epochs, minilm, the whole file;
      selfmm's runs predict a constant (Corr 0, accuracies = class shares, identical for every seed);
    - sweep `hscl-mosi-smoke` (tag smoke=true): tiny encoder, 3 epochs, the file cut to 128/64/64,
      3 search trials (ASHA grace 1, reduction 2), final seeds 1111, 1112;
    - robustness study `robust-l1-smoke` (evaluate protocol): l1, tiny, 2 epochs, cut to 128/64/64,
      seeds 111, 1111, 11111 — the newest l1 runs, which the method table must not take.
    """
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment(MOSI_EXPERIMENT, artifact_location=(root / "artifacts").as_uri())
    store = MosiStore(uri, exp_id)
    rng = np.random.default_rng(3)
    clock = [int(time.time() * 1000) - 5_000_000]

    def tick() -> int:
        clock[0] += 1000
        return clock[0]

    def dataset(run_id: str, splits: tuple[int, int, int], context: str) -> None:
        log_dataset(client, run_id, name=MOSI_DATASET, digest=MOSI_DIGEST, source=MOSI_FILE, source_type="local",
                    splits=splits, context=context)

    def parent(name: str, kind: str, splits: tuple[int, int, int], **tags: str) -> str:
        run = client.create_run(exp_id, start_time=tick(), run_name=name, tags={
            "kind": kind, "dataset": MOSI_DATASET, "sweep_name": name, "code_version": "test", **tags})
        store.parents[name] = run.info.run_id
        dataset(run.info.run_id, splits, kind)
        return run.info.run_id

    def params(method: str, seed: int, *, encoder: str, epochs: int, sizes: tuple[int, int, int]) -> dict:
        return {"method": method, "data": MOSI_FILE, "seed": seed, "text_encoder": encoder, "max_epochs": epochs,
                "synthetic_train": sizes[0], "synthetic_valid": sizes[1], "synthetic_test": sizes[2],
                "batch_size": 32, "lr_text": 5e-05}

    def child(pid: str, name: str, tags: dict, run_params: dict, best_test: dict, splits, epochs_run: int) -> None:
        pname = next(k for k, v in store.parents.items() if v == pid)
        run = client.create_run(exp_id, start_time=tick(), run_name=name, tags={
            "mlflow.parentRunId": pid, "dataset": MOSI_DATASET, "sweep_name": pname,
            "dataset_digest": MOSI_DIGEST, **tags})
        rid, ts = run.info.run_id, clock[0]
        metrics = [Metric(f"best/test/{k}", v, ts, 3) for k, v in best_test.items()]
        metrics += [Metric(f"best/valid/{k}", v, ts, 3) for k, v in best_test.items()]
        metrics.append(Metric("epochs_run", epochs_run, ts, 3))
        client.log_batch(rid, metrics=metrics, params=[Param(k, str(v)) for k, v in run_params.items()])
        dataset(rid, splits, tags.get("stage", "child"))
        client.set_terminated(rid, "FINISHED", end_time=ts + 500)

    none = (0, 0, 0)
    # --- the comparison: every method, the whole file -----------------------------------------------
    pc = parent("compare-mosi", "comparison", MOSI_SPLITS, method=",".join(SEVEN_METHODS),
                methods=",".join(SEVEN_METHODS), seeds=",".join(map(str, COMPARE_SEEDS)), sampler="grid")
    for i, method in enumerate(SEVEN_METHODS):
        for seed in COMPARE_SEEDS:
            if method == DEGENERATE_METHOD:
                vals = constant_prediction_metrics()
            else:
                vals = _metrics(rng, _base(0.80 - 0.01 * i, 0.72 + 0.01 * i, 0.70 - 0.01 * i), 0.008)
            store.values[("compare-mosi", method, seed)] = vals
            child(pc, f"{method}-{seed}", {"stage": "final", "method": method, "seed": str(seed)},
                  params(method, seed, encoder="minilm", epochs=6, sizes=none), vals, MOSI_SPLITS, 6)
    client.set_terminated(pc, "FINISHED")

    # --- a --smoke sweep that cut the real file -------------------------------------------------------
    ps = parent("hscl-mosi-smoke", "sweep", SMOKE_SPLITS, method="hscl", sampler="tpe", sampler_seed="0", smoke="true")
    client.log_text(ps, json.dumps({
        "method": "hscl", "metric": "best/valid/mae", "mode": "min", "sampler": "tpe", "sampler_seed": 0,
        "num_samples": 3, "asha": {"grace_period": 1, "reduction_factor": 2, "max_t": 3},
        "params": [{"name": "omega1", "low": 1e-3, "high": 1.0, "log": True}]}), "search_space.json")
    for i, epochs in enumerate((1, 3, 2)):
        vals = _metrics(rng, _base(0.55, 1.3, 0.2), 0.02)
        child(ps, f"trial-t{i}", {"stage": "search", "method": "hscl", "trial_id": f"t{i}", "seed": str(5000 + i)},
              {**params("hscl", 5000 + i, encoder="tiny", epochs=3, sizes=SMOKE_SPLITS), "omega1": 0.01 * (i + 1)},
              vals, SMOKE_SPLITS, epochs)
    for seed in COMPARE_SEEDS[:2]:
        vals = _metrics(rng, _base(0.56, 1.25, 0.25), 0.02)
        store.values[("hscl-mosi-smoke", "hscl", seed)] = vals
        child(ps, f"final-{seed}", {"stage": "final", "method": "hscl", "seed": str(seed)},
              {**params("hscl", seed, encoder="tiny", epochs=3, sizes=SMOKE_SPLITS), "omega1": 0.02},
              vals, SMOKE_SPLITS, 3 if seed == 1111 else 2)
    client.set_terminated(ps, "FINISHED")

    # --- a robustness smoke on l1 (the newest l1 runs) ------------------------------------------------
    pr = parent("robust-l1-smoke", "robustness", SMOKE_SPLITS, method="l1", methods="l1", protocol="evaluate",
                seeds=",".join(map(str, ROBUST_SMOKE_SEEDS)), sampler="grid")
    for seed in ROBUST_SMOKE_SEEDS:
        vals = _metrics(rng, _base(0.57, 1.2, 0.3), 0.02)
        store.values[("robust-l1-smoke", "l1", seed)] = vals
        child(pr, f"l1-{seed}", {"stage": "robustness", "method": "l1", "seed": str(seed), "protocol": "evaluate"},
              params("l1", seed, encoder="tiny", epochs=2, sizes=SMOKE_SPLITS), vals, SMOKE_SPLITS, 2)
    client.set_terminated(pr, "FINISHED")
    return store


@pytest.fixture(scope="session")
def mosi_store(tmp_path_factory: pytest.TempPathFactory) -> MosiStore:
    return build_mosi_store(tmp_path_factory.mktemp("mosi"))


@pytest.fixture(scope="session")
def mosi_methods(mosi_store: MosiStore, tmp_path_factory: pytest.TempPathFactory):
    """The method comparison of the mosi store (all seven methods), artifacts logged, tables as CSV."""
    from reports.build import build_report

    out = tmp_path_factory.mktemp("mosi-report")
    return build_report(tracking_uri=mosi_store.uri, experiment=MOSI_EXPERIMENT, methods=True, out_dir=out,
                        csv_dir=out / "csv")


# --- the issue's store: the newest runs of each method come from different budgets -------------------
ISSUE_SWEEP_SEEDS = (1111, 1112)


def build_issue_store(root: Path) -> MosiStore:
    """Experiment `mmsa-mosi_clean` as a new user made it (oldest first):
    - robustness study `robust-smoke` (evaluate protocol, --smoke): l1 and mmckd, tiny encoder,
      2 epochs, the file cut to 128/64/64, seeds 111, 1111, 11111. It logged the file first, so
      MLflow's one profile for the file says 128/64/64 and the file's own sizes are unknown;
    - sweeps `hscl-mosi` and `l1-mosi`: minilm, 6 epochs, the whole file, final seeds 1111, 1112;
      l1 is better than hscl by nearly the same amount on both seeds (a t-test over 2 pairs would
      call that significant).
    """
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.create_experiment(MOSI_EXPERIMENT, artifact_location=(root / "artifacts").as_uri())
    store = MosiStore(uri, exp_id)
    rng = np.random.default_rng(11)
    clock = [int(time.time() * 1000) - 2_000_000]

    def tick() -> int:
        clock[0] += 1000
        return clock[0]

    def run(name: str, tags: dict, params: dict | None, splits, metrics: dict | None = None) -> str:
        r = client.create_run(exp_id, start_time=tick(), run_name=name, tags={"dataset": MOSI_DATASET, **tags})
        rid = r.info.run_id
        if params is not None:
            client.log_batch(rid, params=[Param(k, str(v)) for k, v in params.items()],
                             metrics=[Metric(k, v, clock[0], 2) for k, v in (metrics or {}).items()])
        log_dataset(client, rid, name=MOSI_DATASET, digest=MOSI_DIGEST, source=MOSI_FILE, source_type="local",
                    splits=splits, context=tags.get("stage") or tags["kind"])
        return rid

    def params(method: str, seed: int, encoder: str, epochs: int, sizes) -> dict:
        return {"method": method, "seed": seed, "data": MOSI_FILE, "text_encoder": encoder, "max_epochs": epochs,
                "synthetic_train": sizes[0], "synthetic_valid": sizes[1], "synthetic_test": sizes[2]}

    def children(parent: str, pid: str, stage: str, method: str, seeds, encoder, epochs, sizes, base, extra=None):
        for seed in seeds:
            vals = base(seed)
            store.values[(parent, method, seed)] = vals
            metrics = {f"best/test/{k}": v for k, v in vals.items()} | {"epochs_run": float(epochs)}
            run(f"{method}-{seed}", {"mlflow.parentRunId": pid, "stage": stage, "method": method, "seed": str(seed),
                                     "sweep_name": parent, **(extra or {})},
                params(method, seed, encoder, epochs, sizes), SMOKE_SPLITS if any(sizes) else MOSI_SPLITS, metrics)
        client.set_terminated(pid, "FINISHED")

    def finish_children(pid: str) -> None:
        for child in client.search_runs([exp_id], f"tags.mlflow.parentRunId = '{pid}'"):
            client.set_terminated(child.info.run_id, "FINISHED")

    noisy = lambda acc, mae, corr: lambda seed: _metrics(rng, _base(acc, mae, corr), 0.02)  # noqa: E731
    pr = run("robust-smoke", {"kind": "robustness", "sweep_name": "robust-smoke", "protocol": "evaluate",
                              "method": "l1,mmckd", "methods": "l1,mmckd"}, None, SMOKE_SPLITS)
    store.parents["robust-smoke"] = pr
    for method in ("l1", "mmckd"):
        children("robust-smoke", pr, "robustness", method, ROBUST_SMOKE_SEEDS, "tiny", 2, SMOKE_SPLITS,
                 noisy(0.55, 1.3, 0.2), {"protocol": "evaluate"})
    finish_children(pr)
    hscl_base = {1111: _base(0.78, 0.80, 0.65), 1112: _base(0.76, 0.82, 0.63)}

    def better_by(gain: float):
        """hscl's values, each metric better by `gain` plus a hair that differs per seed."""
        def values(seed: int) -> dict[str, float]:
            step = gain + 0.0004 * (seed - 1111) if gain else 0.0
            return {k: v - step if k == "mae" else v + step for k, v in hscl_base[seed].items()}
        return values

    for method, gain in (("hscl", 0.0), ("l1", 0.03)):
        pid = run(f"{method}-mosi", {"kind": "sweep", "sweep_name": f"{method}-mosi", "method": method,
                                     "sampler": "tpe", "smoke": "false"}, None, MOSI_SPLITS)
        store.parents[f"{method}-mosi"] = pid
        children(f"{method}-mosi", pid, "final", method, ISSUE_SWEEP_SEEDS, "minilm", 6, (0, 0, 0), better_by(gain))
        finish_children(pid)
    return store


@pytest.fixture(scope="session")
def issue_store(tmp_path_factory: pytest.TempPathFactory) -> MosiStore:
    return build_issue_store(tmp_path_factory.mktemp("issue"))
