"""Does a live sweep land where the simulated one says it should? One live `run_sweep` per sampler seed,
on the tabulated benchmark's own data, against the simulated distribution of the same arm.

    python benchmarks/bench_search_live.py                               # 3 live sweeps of B/4 = 96 epochs (~15 min, 2 cores)
    python benchmarks/bench_search_live.py --budget 384 --sampler-seeds 0

`bench_search_simulated.py` replays searches on a table of trained configurations
(`benchmarks/data/search_table_hscl_synthetic.npz`). Its verdicts hold for the real sweeps only if
(a) the table's numbers are what today's trainer produces and (b) the simulator's searcher and
scheduler behave like the shipped ones. This script checks both, live:

- **the same setting**: `sweeps.search.run_sweep` as shipped (Optuna TPE, multivariate, constant
  liar, 10 start-up trials, the paper configuration first; ASHA grace 4, reduction 3; an epoch budget)
  on the table's data and base configuration (HSCL, tiny encoder, synthetic MOSI 384 / 1024 / 1024,
  16 epochs, patience 16, one thread per trial), 2 trials at a time, re-ranking off (the
  ``tpe+asha`` arm); the winner retrained on seed 1111 in the final stage gives the live incumbent's
  test MAE — the simulator's score;
- **the simulated distribution**: the ``tpe+asha`` arm replayed ``--reps`` times on the table at the
  same budget; its 2.5 / 50 / 97.5 % quantiles of the incumbent's test MAE and, for the live sweep
  with sampler seed r, the replay with seed r (common random numbers; the live TPE proposes
  continuous points where the replay takes the nearest of the table's 129, so the pair differs);
- **reproduction**: the live sweep's first trial is the paper configuration on seed 1111, the table's
  row 0: its per-epoch validation MAE against the table's (max absolute difference).

Printed and written to JSON (``benchmarks/results/search_live.json``): per live sweep its trials,
epochs, incumbent test MAE, its quantile in the simulated distribution and whether it lies inside the
central 95 % band.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
sys.path.insert(0, _REPO)

import numpy as np  # noqa: E402

from benchmarks._common import machine, write_json  # noqa: E402
from benchmarks.bench_search_simulated import DEFAULT_TABLE, SHIPPED  # noqa: E402
from benchmarks.search_sim import AshaRule, Table, TpeSearcher, simulate  # noqa: E402


def simulated(table: Table, budget: int, reps: int, workers: int) -> np.ndarray:
    """The tpe+asha arm's incumbent test MAE after `budget` epochs, one per repetition (seed r)."""
    view = table.view()
    paper = {p.name: float(v) for p, v in zip(view.params, table.values[0])}
    out = np.empty(reps)
    for r in range(reps):
        searcher = TpeSearcher(view, r, n_startup_trials=SHIPPED["startup"], paper_start=SHIPPED["paper_start"],
                               paper_values=paper)
        trace = simulate(view, searcher, AshaRule(view.max_t, SHIPPED["grace"], SHIPPED["rf"]), budget, workers)
        out[r] = trace.curve[budget - 1]
    return out


def table_row0_valid(table: Table) -> np.ndarray:
    """Per-epoch validation MAE of the paper configuration (row 0) on the base seed."""
    run = int(np.flatnonzero((table.run_row == 0) & (table.run_seed == table.base_seed))[0])
    kv = table.valid_abs_err.shape[2]
    return table.valid_abs_err[run].sum(axis=1) / (kv * table.chunk)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", default=DEFAULT_TABLE)
    p.add_argument("--budget", type=int, default=96, help="epochs per live sweep (default %(default)s = B/4)")
    p.add_argument("--sampler-seeds", default="0,1,2")
    p.add_argument("--reps", type=int, default=200, help="simulated repetitions (default %(default)s)")
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--storage-path", default=os.path.join(_REPO, "runs", "bench_search_live"))
    p.add_argument("--json", default=None, help="JSON path (default benchmarks/results/search_live.json)")
    args = p.parse_args()
    seeds = [int(s) for s in args.sampler_seeds.split(",") if s.strip()]
    table = Table.load(args.table)
    base = dict(table.meta["base_config"])
    workers = int(table.meta.get("workers", 2))

    t0 = time.perf_counter()
    dist = simulated(table, args.budget, args.reps, workers)
    q = np.quantile(dist, [0.025, 0.5, 0.975])
    print(f"simulated tpe+asha, B = {args.budget} epochs, {args.reps} replays: incumbent test MAE median {q[1]:.4f}, "
          f"95 % band [{q[0]:.4f}, {q[2]:.4f}] ({time.perf_counter() - t0:.0f} s)", flush=True)

    from mlflow.tracking import MlflowClient

    from sweeps.config import SweepConfig
    from sweeps.runtime_options import RuntimeOptions
    from sweeps.search import run_sweep

    storage = os.path.abspath(args.storage_path)
    uri = f"sqlite:///{storage}/mlflow.db"
    overrides = {k: v for k, v in base.items() if k not in ("data", "text_encoder", "max_epochs", "device")}
    row0 = table_row0_valid(table)
    paper_values = {p_.name: float(v) for p_, v in zip(table.params(), table.values[0])}
    live = []
    for seed in seeds:
        cfg = SweepConfig(name=f"search-live-b{args.budget}-s{seed}", method="hscl", data=base["data"],
                          text_encoder=base["text_encoder"], overrides=overrides, max_epochs=int(base["max_epochs"]),
                          num_samples=args.budget, budget_epochs=args.budget, search_lr_dropout=True,
                          sampler="tpe", sampler_seed=seed, asha_grace_period=SHIPPED["grace"],
                          asha_reduction_factor=SHIPPED["rf"], paper_start=SHIPPED["paper_start"], rerank_top=0,
                          final_seeds=(table.base_seed,),
                          runtime=RuntimeOptions(storage_path=storage, tracking_uri=uri, num_cpus=args.num_cpus,
                                                 cpus_per_trial=1, verbose=0, keep_checkpoints="none"))
        start = time.perf_counter()
        res = run_sweep(cfg)
        seconds = time.perf_counter() - start
        test = res.final[0].best_test.get("mae") if res.final and res.final[0].best_test else float("nan")
        # reproduction: the paper configuration (first trial) against the table's row 0
        client = MlflowClient(uri)
        kids = client.search_runs([res.experiment_id], max_results=1000, filter_string=(
            f"tags.`mlflow.parentRunId` = '{res.parent_run_id}' AND tags.stage = 'search'"))
        repro = None
        for run in kids:
            if all(abs(float(run.data.params[k]) - v) <= 1e-9 * max(1.0, abs(v)) for k, v in paper_values.items()):
                hist = sorted(client.get_metric_history(run.info.run_id, "valid/mae"), key=lambda m: m.step)
                live_curve = np.array([m.value for m in hist])
                n = min(len(live_curve), len(row0))
                repro = {"epochs": n, "max_abs_diff": float(np.max(np.abs(live_curve[:n] - row0[:n])))}
                break
        quantile = float(np.mean(dist <= test))
        row = {"sampler_seed": seed, "trials": res.search_trials, "epochs": res.search_epochs, "seconds": round(seconds, 1),
               "incumbent_test_mae": test, "search_objective": res.best_objective,
               "simulated_same_seed": float(dist[seed]) if seed < len(dist) else None,
               "quantile_in_simulated": quantile, "inside_95_band": bool(q[0] <= test <= q[2]),
               "paper_config_reproduction": repro}
        live.append(row)
        print(f"live sweep, sampler seed {seed}: {res.search_trials} trials, {res.search_epochs} epochs "
              f"({seconds:.0f} s): incumbent test MAE {test:.4f} (quantile {quantile:.2f} of the simulated; "
              f"replay with the same seed {row['simulated_same_seed']:.4f}); "
              f"{'inside' if row['inside_95_band'] else 'OUTSIDE'} the 95 % band"
              + (f"; paper configuration vs table row 0: max |Δ valid MAE| {repro['max_abs_diff']:.2e} over "
                 f"{repro['epochs']} epochs" if repro else "; paper configuration not found among the trials"),
              flush=True)
    payload = {"machine": machine(), "table": os.path.relpath(args.table, _REPO), "budget": args.budget,
               "shipped": SHIPPED, "base_config": base, "simulated": {
                   "reps": args.reps, "q025": float(q[0]), "median": float(q[1]), "q975": float(q[2]),
                   "mean": float(dist.mean())},
               "live": live, "inside_band": sum(r["inside_95_band"] for r in live), "n_live": len(live)}
    write_json("search_live", payload, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
