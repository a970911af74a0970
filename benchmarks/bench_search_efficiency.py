"""Does TPE + ASHA find a good configuration with less compute than MMSA's random search?

    python benchmarks/bench_search_efficiency.py                       # 5 sampler seeds, both strategies
    python benchmarks/bench_search_efficiency.py --sampler-seeds 0 --num-samples 6 --max-epochs 6   # quick look

At equal trial budgets (``--num-samples`` trials each), over ``--sampler-seeds``:

- (a) **random**: Optuna's RandomSampler, every trial trained for all ``--max-epochs`` epochs (ASHA's
  grace period = max_epochs, so nothing stops early) — MMSA's ``tune`` mode;
- (b) **tpe+asha**: the sweeps' own search (seeded multivariate TPE with constant liar, ASHA with
  ``--asha-grace-period`` / ``--asha-reduction-factor``).

Both run through `sweeps.search.run_sweep` — Ray Tune trials, MLflow child runs — over the same
space (HSCL's loss weights and, unless ``--loss-weights-only``, lr_text / lr_other / dropout, which
give the search something to find), from the same base configuration (the tiny text encoder and
synthetic MOSI of ``--train-size`` samples, so that the 10 sweeps fit a 2-core machine), without the
paper's start point (neither strategy gets a head start). Each sweep's final stage retrains its best
configuration on one seed; only the search stage is counted.

From the MLflow runs of each search stage: every epoch's validation MAE, ordered by the time it was
logged, gives the curve "best validation MAE so far" against "epochs spent". Printed and written to
JSON (``benchmarks/results/search_efficiency.json``) and a PNG: (a)'s final best, (b)'s final best,
the epochs each spent, and the epochs (b) needed to come within ``--tolerance`` (1 %) of (a)'s final
best, with the median over the sampler seeds of (b)'s epochs-to-reach / (a)'s epochs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
sys.path.insert(0, _REPO)

from benchmarks._common import RESULTS_DIR, machine, write_json  # noqa: E402

STRATEGIES = ("random", "tpe+asha")


def search_curve(tracker, experiment_id: str, parent_run_id: str) -> list[tuple[int, float, str]]:
    """[(timestamp_ms, valid MAE, run id)] of every epoch of the search stage, in logging order."""
    runs = tracker.client.search_runs(
        [experiment_id], f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.stage = 'search'",
        max_results=10_000)
    events = []
    for run in runs:
        for m in tracker.client.get_metric_history(run.info.run_id, "valid/mae"):
            events.append((m.timestamp, m.value, run.info.run_id))
    return sorted(events)


def summarize(events: list[tuple[int, float, str]]) -> dict:
    best, curve = float("inf"), []
    for i, (_, value, _) in enumerate(events, start=1):
        best = min(best, value)
        curve.append([i, best])
    return {"epochs": len(events), "trials": len({r for *_, r in events}),
            "final_best": best, "curve": curve}


def epochs_to_reach(curve: list[list[float]], target: float) -> int | None:
    return next((int(e) for e, best in curve if best <= target), None)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sampler-seeds", default="0,1,2,3,4")
    p.add_argument("--num-samples", type=int, default=24, help="trials per sweep (default %(default)s)")
    p.add_argument("--max-epochs", type=int, default=16, help="(default %(default)s)")
    p.add_argument("--asha-grace-period", type=int, default=2, help="(default %(default)s)")
    p.add_argument("--asha-reduction-factor", type=int, default=3, help="(default %(default)s)")
    p.add_argument("--train-size", type=int, default=384, help="synthetic MOSI train samples (default %(default)s)")
    p.add_argument("--loss-weights-only", action="store_true", help="search HSCL's loss weights alone")
    p.add_argument("--tolerance", type=float, default=0.01, help="relative (default %(default)s = 1 %%)")
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--storage-path", default=os.path.join(_REPO, "runs", "bench_search_efficiency"))
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/search_efficiency.json)")
    args = p.parse_args()
    seeds = [int(s) for s in args.sampler_seeds.split(",") if s.strip()]

    from sweeps.config import SweepConfig
    from sweeps.runtime_options import RuntimeOptions
    from sweeps.search import run_sweep
    from sweeps.tracking import Tracker

    storage = os.path.abspath(args.storage_path)
    uri = f"sqlite:///{storage}/mlflow.db"
    overrides = {"synthetic_train": args.train_size, "synthetic_valid": max(args.train_size // 3, 32),
                 "synthetic_test": max(args.train_size // 3, 32), "av_layers": 1, "batch_size": 32,
                 "num_threads": 1, "patience": args.max_epochs}
    if args.loss_weights_only:
        overrides["lr_text"] = 1e-3
    common = dict(method="hscl", data="synthetic-mosi", text_encoder="tiny", overrides=overrides,
                  max_epochs=args.max_epochs, num_samples=args.num_samples,
                  search_lr_dropout=not args.loss_weights_only, paper_start=False, final_seeds=(1111,),
                  runtime=RuntimeOptions(storage_path=storage, tracking_uri=uri, num_cpus=args.num_cpus,
                                         cpus_per_trial=args.cpus_per_trial, verbose=0))
    tracker = Tracker(uri)
    rows, t0 = [], time.perf_counter()
    for seed in seeds:
        row = {"sampler_seed": seed}
        for strategy in STRATEGIES:
            random_full = strategy == "random"
            cfg = SweepConfig(name=f"search-eff-{strategy.replace('+', '-')}-s{seed}",
                              sampler="random" if random_full else "tpe", sampler_seed=seed,
                              asha_grace_period=args.max_epochs if random_full else args.asha_grace_period,
                              asha_reduction_factor=args.asha_reduction_factor, **common)
            start = time.perf_counter()
            res = run_sweep(cfg)
            row[strategy] = summarize(search_curve(tracker, res.experiment_id, res.parent_run_id))
            row[strategy]["seconds"] = round(time.perf_counter() - start, 1)
            row[strategy]["objective"] = res.best_objective
            print(f"sampler seed {seed} {strategy:<9} best valid MAE {row[strategy]['final_best']:.4f} after "
                  f"{row[strategy]['epochs']} epochs ({row[strategy]['trials']} trials, "
                  f"{row[strategy]['seconds']:.0f} s)", flush=True)
        target = row["random"]["final_best"] * (1 + args.tolerance)
        reach = epochs_to_reach(row["tpe+asha"]["curve"], target)
        row["target"] = target
        row["tpe_asha_epochs_to_reach"] = reach
        row["fraction_of_random_epochs"] = None if reach is None else reach / row["random"]["epochs"]
        rows.append(row)

    fractions = [r["fraction_of_random_epochs"] for r in rows]
    reached = [f for f in fractions if f is not None]
    median = statistics.median([f if f is not None else float("inf") for f in fractions])
    print(f"\n{'seed':>4} {'random best':>12} {'epochs':>7} {'tpe+asha best':>14} {'epochs':>7} "
          f"{'to reach (a)+' + format(args.tolerance, '.0%'):>16} {'fraction':>9}")
    for r in rows:
        a, b = r["random"], r["tpe+asha"]
        reach = r["tpe_asha_epochs_to_reach"]
        print(f"{r['sampler_seed']:>4} {a['final_best']:>12.4f} {a['epochs']:>7} {b['final_best']:>14.4f} "
              f"{b['epochs']:>7} {reach if reach is not None else 'never':>16} "
              f"{'' if reach is None else format(r['fraction_of_random_epochs'], '.3f'):>9}")
    print(f"median fraction of (a)'s epochs (b) needs: {median:.3f} "
          f"({len(reached)}/{len(rows)} seeds reached (a)'s best within {args.tolerance:.0%}); "
          f"median epochs spent: random {statistics.median(r['random']['epochs'] for r in rows)}, "
          f"tpe+asha {statistics.median(r['tpe+asha']['epochs'] for r in rows)}")

    png = _plot(rows, args) if rows else None
    write_json("search_efficiency", {
        "args": vars(args), "machine": machine(), "seconds": round(time.perf_counter() - t0, 1),
        "space": "loss weights" if args.loss_weights_only else "loss weights + lr_text, lr_other, dropout",
        "median_fraction_of_random_epochs": median, "seeds_reached": len(reached), "rows": rows,
        "png": png}, args.out)
    return 0


def _plot(rows: list[dict], args) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours = {"random": "tab:grey", "tpe+asha": "tab:blue"}
    labels = {"random": "(a) random, full-length trials", "tpe+asha": "(b) TPE + ASHA (the sweeps)"}
    for i, r in enumerate(rows):
        for strategy in STRATEGIES:
            xs, ys = zip(*r[strategy]["curve"])
            ax.step(xs, ys, where="post", color=colours[strategy], alpha=0.8, lw=1.2,
                    label=labels[strategy] if i == 0 else None)
    ax.set_xlabel("epochs spent (all trials of the search, in logging order)")
    ax.set_ylabel("best validation MAE so far")
    ax.set_title(f"HSCL search on synthetic MOSI, {args.num_samples} trials, {len(rows)} sampler seeds")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = os.path.splitext(args.out)[0] + ".png" if args.out else str(RESULTS_DIR / "search_efficiency.png")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
