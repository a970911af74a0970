"""Does the shipped sweep beat HSCL's paper configuration on real data? Test, paired over seeds.

    python benchmarks/bench_sweep_mosi_real.py --data path/to/mosi_clean.pkl            # ~1.5 h on 2 CPU cores
    python benchmarks/bench_sweep_mosi_real.py --data path/to/mosi_clean.pkl --num-samples 4 --max-epochs 4  # a look

Two studies in one store, on the leak-free CMU-MOSI split (train 383 / valid 126 / test 243; docs/DATA.md),
MiniLM text encoder, the same epoch budget per training run:

- **sweep**: `sweeps/hscl.py` as shipped (TPE from the paper configuration, ASHA, re-ranking of the best
  full-fidelity configurations on new seeds), with ``--num-samples`` / ``--max-epochs`` sized to fit a
  session; its winner is retrained on ``--seeds`` (the sweep's final stage);
- **paper**: HSCL's paper configuration trained on the same ``--seeds`` (a method comparison of one
  method, `ablations/compare.py`).

Per seed, the two test results form a pair. Printed and written to JSON
(``benchmarks/results/sweep_mosi_real.json``): each side's test MAE, Corr and Acc-2 (mean ± std), the
paired difference (sweep − paper) with its 95 % t interval and the paired t-test's p, the exact
two-sided sign-flip (permutation) p over the seeds, and the sweep's optimism (the winner's re-ranked
mean validation MAE minus the value its search run reported). With 5 seeds and a test split of 243
utterances, a difference whose interval spans 0 is not a result; the JSON says which it is.

Re-running the same command resumes both studies (nothing finished is trained again).
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import statistics
import sys
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
sys.path.insert(0, _REPO)

from benchmarks._common import SHARED_DATA, machine, write_json  # noqa: E402

KEYS = ("mae", "corr", "acc2_non0", "f1_non0", "acc7")


def paired(sweep: list[float], paper: list[float]) -> dict:
    """Paired difference sweep − paper: mean, 95 % t interval, t-test p, exact sign-flip p."""
    from scipy import stats

    d = [a - b for a, b in zip(sweep, paper)]
    n = len(d)
    mean = statistics.fmean(d)
    out: dict = {"n": n, "diff_mean": mean, "diffs": d}
    if n < 2:
        return out
    sd = statistics.stdev(d)
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    out.update(diff_std=sd, ci95=[mean - half, mean + half],
               t_p=float(stats.ttest_rel(sweep, paper).pvalue) if sd > 0 else (0.0 if mean else 1.0))
    # exact permutation p: every sign pattern of the differences (2^n, n = seeds)
    observed = abs(sum(d))
    flips = [abs(sum(s * x for s, x in zip(signs, d))) >= observed - 1e-12
             for signs in itertools.product((1, -1), repeat=n)]
    out["sign_flip_p"] = sum(flips) / len(flips)
    out["excludes_zero"] = not (out["ci95"][0] <= 0 <= out["ci95"][1])
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(SHARED_DATA / "mosi_clean" / "mosi_clean.pkl"))
    p.add_argument("--num-samples", type=int, default=10, help="search trials (default 10)")
    p.add_argument("--max-epochs", type=int, default=8, help="epochs per training run, both sides (default 8)")
    p.add_argument("--rerank-top", type=int, default=2)
    p.add_argument("--rerank-seeds", type=int, default=2)
    p.add_argument("--seeds", default="1111,1112,1113,1114,1115", help="final seeds, both sides")
    p.add_argument("--text-encoder", default="minilm")
    p.add_argument("--num-cpus", type=int, default=2)
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--storage-path", default=os.path.join(_REPO, "runs", "bench_sweep_mosi_real"))
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/sweep_mosi_real.json)")
    args = p.parse_args()
    if not os.path.exists(args.data):
        print(f"error: --data {args.data!r} does not exist (a leak-free CMU-MOSI pickle is expected)", file=sys.stderr)
        return 2
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    storage = os.path.abspath(args.storage_path)

    from ablations.compare import build_comparison, run_comparison
    from sweeps.cli import build_parser, config_from_args
    from sweeps.search import run_sweep

    sweep_argv = ["--data", args.data, "--name", "hscl-mosi-clean-real", "--text-encoder", args.text_encoder,
                  "--num-samples", str(args.num_samples), "--max-epochs", str(args.max_epochs),
                  "--rerank-top", str(args.rerank_top), "--rerank-seeds", str(args.rerank_seeds),
                  "--final-seeds", ",".join(map(str, seeds)), "--storage-path", storage,
                  "--num-cpus", str(args.num_cpus), "--cpus-per-trial", str(args.cpus_per_trial),
                  "--keep-checkpoints", "none", "--verbose", "1"]
    cfg = config_from_args(build_parser().parse_args(sweep_argv))
    t0 = time.perf_counter()
    res = run_sweep(cfg)
    sweep_seconds = time.perf_counter() - t0
    by_seed_sweep = {int(r.key.rsplit("seed", 1)[1]): r.best_test for r in res.final
                     if r.status in ("FINISHED", "SKIPPED") and r.best_test}

    comp = build_comparison(["hscl"], data=args.data, seeds=seeds, name="hscl-paper-mosi-clean-real",
                            values={"text_encoder": args.text_encoder, "max_epochs": args.max_epochs})
    t1 = time.perf_counter()
    outcome = run_comparison(comp, cfg.runtime)
    paper_seconds = time.perf_counter() - t1
    by_seed_paper = {run.config.seed: r.best_test for run, r in outcome.results
                     if r.status in ("FINISHED", "SKIPPED") and r.best_test}

    common = sorted(set(by_seed_sweep) & set(by_seed_paper))
    table = {}
    for side, rows in (("sweep", by_seed_sweep), ("paper", by_seed_paper)):
        table[side] = {k: {"mean": statistics.fmean(rows[s][k] for s in common),
                           "std": statistics.stdev([rows[s][k] for s in common]) if len(common) > 1 else 0.0,
                           "per_seed": [rows[s][k] for s in common]} for k in KEYS}
    diffs = {k: paired([by_seed_sweep[s][k] for s in common], [by_seed_paper[s][k] for s in common]) for k in KEYS}
    rerank = [{k: row.get(k) for k in ("trial_id", "searched", "search", "full_fidelity", "seeds", "mean", "std",
                                       "optimism")} for row in res.rerank]
    winner = next((r for r in res.rerank if r.get("trial_id") == res.best_trial_id), None)
    payload = {
        "machine": machine(), "data": args.data, "seeds": common, "text_encoder": args.text_encoder,
        "budget": {"search_trials": res.search_trials, "max_epochs": args.max_epochs,
                   "rerank_top": args.rerank_top, "rerank_seeds": args.rerank_seeds,
                   "sweep_seconds": round(sweep_seconds, 1), "paper_seconds": round(paper_seconds, 1)},
        "sweep_best_config": res.searched, "winner_search_objective": res.best_objective,
        "optimism": winner.get("optimism") if winner else None, "rerank": rerank,
        "test": table, "paired_sweep_minus_paper": diffs,
        "tracking_uri": res.tracking_uri, "sweep_parent_run_id": res.parent_run_id,
    }
    print(f"\nHSCL on {os.path.basename(args.data)}: sweep ({res.search_trials} search trials, "
          f"{args.max_epochs} epochs, re-rank {args.rerank_top}x{args.rerank_seeds}) vs paper configuration, "
          f"seeds {','.join(map(str, common))}, {args.text_encoder}")
    print(f"{'metric':<10} {'sweep':>16} {'paper':>16} {'sweep - paper [95% CI]':>30} {'t p':>6} {'flip p':>7}")
    for k in KEYS:
        s, q, d = table["sweep"][k], table["paper"][k], diffs[k]
        ci = d.get("ci95", [math.nan, math.nan])
        print(f"{k:<10} {s['mean']:>8.4f} ± {s['std']:<6.4f} {q['mean']:>8.4f} ± {q['std']:<6.4f} "
              f"{d['diff_mean']:>+9.4f} [{ci[0]:+.4f}, {ci[1]:+.4f}] {d.get('t_p', math.nan):>6.3f} "
              f"{d.get('sign_flip_p', math.nan):>7.3f}")
    if winner:
        print(f"optimism of the winner's search value (validation MAE): {winner.get('optimism'):+.4f}")
    write_json("sweep_mosi_real", payload, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
