"""Can TPE + ASHA find as good a configuration as random search with a quarter of the epochs? A
benchmark that can tell: searches replayed on a table of trained configurations.

    python benchmarks/bench_search_simulated.py --reps 50 --json out.json        # the verdict (minutes)
    python benchmarks/bench_search_simulated.py --reps 50 --candidates            # + the defaults study

The table (`benchmarks/data/search_table_hscl_synthetic.npz`, written once by
`make_search_table.py`) holds every epoch's validation and test MAE of HSCL on synthetic MOSI (tiny
text encoder, 384 training samples, 1024 validation, 1024 test) for the paper configuration and 128
scrambled-Sobol configurations of the sweeps' 7-D space (ω1, ω2, α, τ, lr_text, lr_other, dropout),
some of them on two more training seeds. Every arm replays its search on it (`benchmarks.search_sim`:
2 asynchronous workers in epoch time, Ray Tune's ASHA rule, Optuna's TPESampler answered with the
nearest tabulated configuration — conservative for TPE, whose proposals are rounded to a design of
129 points) for a budget of B epochs (default 384 = 24 full-length trials), ``--reps`` times with
common random numbers (repetition r: sampler seed r in every arm; random search's draws are the
stream TPE's start-up trials come from).

Arms (the sweeps' settings: `SweepConfig` defaults — ASHA grace 4, reduction factor 3, max_t 16;
TPE multivariate, constant liar, Optuna's 10 start-up trials, the paper configuration first):
random (full-length trials: MMSA's tune mode), random + ASHA, TPE (full-length), TPE + ASHA (as the
sweeps ship it), TPE + ASHA + re-ranking (top 3 full-fidelity configurations on 2 new seeds, their
96 epochs counted in the budget), and a second random search with other seeds (A/A).

Score: the incumbent's TEST MAE — the configuration the search would return after e epochs (best
validation objective reported so far), measured as the final stage would (test MAE at the best
validation epoch of a full-length run, mean over the table's seeds). Curves: mean over repetitions
with 95 % bootstrap bands. Verdict, fixed in advance (paired over repetitions, relative to random
search with B epochs, 95 % percentile bootstrap CIs of the mean):

(i)   non-inferior at a quarter: TPE + ASHA with B/4 epochs has an upper CI bound below +1 %;
(ii)  equal budget: TPE + ASHA with B epochs — the CI, and whether it excludes 0;
(iii) no room: the table's best test MAE is within 2 % of random search's mean incumbent.
Printed beside them, not part of the rule: the CI of (iii)'s gap, the test MAE of the configuration
with the table's best validation objective (what a search that tried every configuration would
return: the table's best by test is partly luck no search can select on), and re-ranking against
TPE + ASHA without it.

A/A calibration: the same rules on random vs random (other seeds), over ``--aa-experiments``
independent experiments of ``--reps`` repetitions each: how often (i) passes when the truth is 0
(power), how often it passes when the truth is +1 % (false passes; should be <= 2.5 %), how often
(ii)'s CI excludes 0 (should be ~5 %). ``--candidates``: TPE + ASHA with grace 2 / 4 / 8 and 10 or 4
start-up trials (the defaults study), and the table's rank correlations between early and final
objectives. ``--first-rep N``: repetitions N, N + 1, ... (an independent replicate, to confirm a
finding of the defaults study). Always: split noise vs seed noise on the table. JSON (``--json``, default
benchmarks/results/search_simulated.json) and a PNG beside it.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]
sys.path.insert(0, _REPO)

import numpy as np  # noqa: E402

from benchmarks._common import RESULTS_DIR, machine, write_json  # noqa: E402
from benchmarks.search_sim import (AshaRule, FifoRule, RandomSearcher, Table, TpeSearcher,  # noqa: E402
                                   aa_calibration, bootstrap_band, bootstrap_mean_ci, paired_relative, rerank,
                                   simulate, verdict)

DEFAULT_TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "search_table_hscl_synthetic.npz")
SHIPPED = {"grace": 4, "rf": 3, "startup": 10, "paper_start": True}  # sweeps.config.SweepConfig, Optuna's default
RERANK = (3, 2)  # top configurations, new seeds
AA_OFFSET = 10_000  # the A/A arm's seeds: r + AA_OFFSET


def arm(name: str, searcher: str, scheduler: str, **kw) -> dict:
    spec = {"name": name, "searcher": searcher, "scheduler": scheduler, "seed_offset": 0,
            "grace": SHIPPED["grace"], "rf": SHIPPED["rf"], "startup": SHIPPED["startup"],
            "paper_start": searcher == "tpe" and SHIPPED["paper_start"], "rerank": None}
    spec.update(kw)
    return spec


MAIN_ARMS = [
    arm("random", "random", "fifo"),
    arm("random+asha", "random", "asha"),
    arm("tpe", "tpe", "fifo"),
    arm("tpe+asha", "tpe", "asha"),
    arm("tpe+asha+rerank", "tpe", "asha", rerank=RERANK),
    arm("random (A/A)", "random", "fifo", seed_offset=AA_OFFSET),
    # what the paper start (row 0, the first trial of every TPE arm above) is worth on its own
    arm("random, paper first", "random", "fifo", paper_start=True),
    arm("tpe+asha, no paper start", "tpe", "asha", paper_start=False),
]
CANDIDATE_ARMS = [
    arm(f"tpe+asha g{g} s{s}", "tpe", "asha", grace=g, startup=s)
    for s in (10, 4) for g in (2, 4, 8) if not (g == SHIPPED["grace"] and s == SHIPPED["startup"])
] + [arm(f"random+asha g{g}", "random", "asha", grace=g) for g in (2, 8)]


# ---------------------------------------------------------------------------------------------
# workers

_VIEW = None
_ARGS = None


def _init(table_path: str, valid_size: int | None, args: dict) -> None:
    global _VIEW, _ARGS
    _VIEW = Table.load(table_path).view(valid_size)
    _ARGS = args


def run_arm(spec: dict, rep: int) -> dict:
    """One repetition of one arm: its anytime curve (and, with re-ranking, its results per budget)."""
    view, budget, workers = _VIEW, _ARGS["budget"], _ARGS["workers"]
    seed = rep + _ARGS.get("first_rep", 0) + spec["seed_offset"]
    if spec["searcher"] == "random":
        searcher = RandomSearcher(view, seed, first_row=0 if spec["paper_start"] else None)
    else:
        searcher = TpeSearcher(view, seed, n_startup_trials=spec["startup"], paper_start=spec["paper_start"],
                               paper_values=_ARGS["paper_values"])
    scheduler = (AshaRule(view.max_t, spec["grace"], spec["rf"]) if spec["scheduler"] == "asha"
                 else FifoRule(view.max_t))
    out: dict = {"arm": spec["name"], "rep": rep}
    if spec["rerank"]:
        top, seeds = spec["rerank"]
        cost = top * seeds * view.max_t
        budgets = [b for b in _ARGS["rerank_budgets"] if b > cost]
        trace = simulate(view, searcher, scheduler, max(budgets) - cost, workers, snapshots=[b - cost for b in budgets])
        out["rerank"] = {b: rerank(view, trace.snapshots[b - cost], top, seeds, draw_seed=(seed, 7)) for b in budgets}
        # a re-rank with fewer than `top` candidates costs less: the rest of its budget is unused
    else:
        trace = simulate(view, searcher, scheduler, budget, workers)
        out["curve"] = trace.curve.astype(np.float32)
    trials = trace.trials
    out["trials"] = len(trials)
    out["distinct"] = len({t["row"] for t in trials})
    out["full"] = sum(t["epochs"] >= view.max_t for t in trials)
    out["stopped"] = sum(t["stopped"] for t in trials)
    return out


def run_aa_block(k: int) -> np.ndarray:
    """A/A experiment k: `reps` pairs of independent random searches; their final test MAEs (reps × 2)."""
    view, budget, workers, reps = _VIEW, _ARGS["budget"], _ARGS["workers"], _ARGS["reps"]
    out = np.empty((reps, 2))
    for r in range(reps):
        for j in range(2):  # seeds apart from every arm's and every other replicate's (first_rep < 200)
            seed = (2 * _ARGS.get("first_rep", 0) + j + 1) * 10_000_000 + k * reps + r
            trace = simulate(view, RandomSearcher(view, seed), FifoRule(view.max_t), budget, workers)
            out[r, j] = trace.curve[-1]
    return out


def choose_defaults(arms: dict, budgets: tuple[int, int]) -> dict:
    """The rule fixed before looking: a TPE + ASHA candidate (with the paper start, as shipped)
    replaces the shipped settings only if, paired against them, its 95 % CI lies below 0 at B/4 or
    at B and above 0 at neither; among such candidates the lowest mean difference (averaged over
    the two budgets) wins. Otherwise the shipped settings stand."""
    best, best_score = None, 0.0
    for name, a in arms.items():
        vs = a.get("vs_shipped")
        if not vs or not a.get("paper_start", True) or name == "tpe+asha":
            continue
        cis = [vs[str(b)]["ci"] for b in budgets]
        if any(lo > 0 for lo, _ in cis) or not any(hi < 0 for _, hi in cis):
            continue
        score = float(np.mean([vs[str(b)]["mean"] for b in budgets]))
        if score < best_score:
            best, best_score = name, score
    if best is None:
        return {"arm": "tpe+asha", "grace": SHIPPED["grace"], "startup": SHIPPED["startup"],
                "why": "no candidate is better than the shipped settings with a CI excluding 0"}
    return {"arm": best, "grace": arms[best]["grace"], "startup": arms[best]["startup"],
            "why": f"paired CI below 0 against the shipped settings; mean {100 * best_score:+.2f} %"}


# ---------------------------------------------------------------------------------------------
# analyses of the table itself


def rank_correlations(view, epochs=(1, 2, 4, 6, 8, 12)) -> dict:
    """Spearman correlation of the objective after g epochs with the final one, over all
    configurations and within the good region (the better half by final objective)."""
    from scipy.stats import spearmanr

    final = view.objective[:, -1]
    good = final <= np.median(final)
    out = {}
    for g in epochs:
        at = view.objective[:, g - 1]
        out[str(g)] = {"all": float(spearmanr(at, final).statistic),
                       "good_half": float(spearmanr(at[good], final[good]).statistic)}
    return out


def parameter_importance(view) -> dict:
    """Spearman correlation of each parameter (log scale where log) with the final objective."""
    from scipy.stats import spearmanr

    final = view.objective[:, -1]
    return {p.name: float(spearmanr(view.unit[:, j], final).statistic) for j, p in enumerate(view.params)}


def split_vs_seed_noise(table: Table, top: int = 20) -> dict:
    """Split noise against seed noise, relative to the MAE (std / mean), on the table's runs.

    Split noise: each run's model at its best validation epoch, its MAE on the table's chunks of
    `chunk` consecutive samples of the validation and of the test split (consecutive samples share videos, as a split of n samples does);
    the variance across the chunks of a run, pooled over runs, scaled to a split of n samples as
    var_n = var_chunk · chunk / n (chunks of different videos are independent). Checked against
    the direct variance across disjoint n-sample subsets where a split holds several (n ≤ half of
    it). "difference": the same for the difference between two configurations on one split (all
    pairs of the `top` configurations with the best validation MAE), the noise that decides a ranking.
    Seed noise: the variance of the best validation (and test) MAE across the table's training
    seeds, same split, pooled over the configurations that have several; for a difference, ×2.
    """
    c = table.chunk
    valid_chunks = table.valid_abs_err.astype(np.float64) / c  # (R, E, K): MAE of each chunk
    test_chunks = table.test_abs_err.astype(np.float64) / c
    valid_mae = valid_chunks.mean(axis=2)
    test_mae = test_chunks.mean(axis=2)
    best = np.argmin(valid_mae, axis=1)  # (R,) the trainer's best epoch
    runs = np.arange(len(best))
    out: dict = {"chunk": c}
    level_mae = float(valid_mae[runs, best].mean())
    for split, chunks in (("valid", valid_chunks), ("test", test_chunks)):
        m = chunks[runs, best]  # (R, K)
        k = m.shape[1]
        var_c = float(m.var(axis=1, ddof=1).mean())
        direct = {}
        g = 2
        while g <= k // 2:
            grouped = m[:, : (k // g) * g].reshape(len(m), k // g, g).mean(axis=2)
            direct[str(g * c)] = float(math.sqrt(grouped.var(axis=1, ddof=1).mean()) / m.mean())
            g *= 2
        base = [i for i in runs if table.run_seed[i] == table.base_seed]
        order = sorted(base, key=lambda i: valid_mae[i].min())[:top]
        diffs = [m[i] - m[j] for a_, i in enumerate(order) for j in order[a_ + 1:]]
        var_d = float(np.mean([d.var(ddof=1) for d in diffs])) if diffs else float("nan")
        out[split] = {"chunks_per_run": int(k), "mae": float(m.mean()),
                      "rel_std_chunk": math.sqrt(var_c) / float(m.mean()),
                      "rel_std_direct": direct,
                      "var_chunk": var_c, "var_chunk_difference": var_d}
    # both splits' chunks measure the same thing (the same models, disjoint videos): pooled
    var_c = (out["valid"]["var_chunk"] + out["test"]["var_chunk"]) / 2
    var_d = (out["valid"]["var_chunk_difference"] + out["test"]["var_chunk_difference"]) / 2
    sizes = (128, 229, 256, 512, 686, 1024, 2048, 4096, 8192)
    out["split_rel_std"] = {str(n): math.sqrt(var_c * c / n) / level_mae for n in sizes}
    out["split_difference_rel_std"] = {str(n): math.sqrt(var_d * c / n) / level_mae for n in sizes}
    by_row_v: dict[int, list[float]] = {}
    by_row_t: dict[int, list[float]] = {}
    for i, row in enumerate(table.run_row):
        by_row_v.setdefault(int(row), []).append(float(valid_mae[i, best[i]]))
        by_row_t.setdefault(int(row), []).append(float(test_mae[i, best[i]]))
    seeds = {}
    groups = {"top": table.meta.get("extra_rows_top", []), "random": table.meta.get("extra_rows_random", [])}
    groups["all"] = groups["top"] + groups["random"]
    for name, rows in groups.items():
        rows = [r for r in rows if len(by_row_v.get(r, [])) > 1]
        if not rows:
            continue
        var_v = float(np.mean([np.var(by_row_v[r], ddof=1) for r in rows]))
        var_t = float(np.mean([np.var(by_row_t[r], ddof=1) for r in rows]))
        mean_v = float(np.mean([np.mean(by_row_v[r]) for r in rows]))
        mean_t = float(np.mean([np.mean(by_row_t[r]) for r in rows]))
        seeds[name] = {"configs": len(rows), "seeds": len(by_row_v[rows[0]]), "valid_var": var_v,
                       "valid_rel_std": math.sqrt(var_v) / mean_v, "test_rel_std": math.sqrt(var_t) / mean_t}
    out["seed"] = seeds
    ref = seeds.get("top") or seeds.get("all")
    if ref:
        out["n_where_split_equals_seed"] = var_c * c / ref["valid_var"]
        out["n_where_difference_split_equals_seed"] = var_d * c / (2 * ref["valid_var"])
    sizes_meta = table.meta["sizes"]
    if table.eval_seconds is not None:
        out["eval_seconds_per_sample"] = float(table.eval_seconds.mean() / (sizes_meta["valid"] + sizes_meta["test"]))
        out["train_seconds_per_epoch"] = float(table.train_seconds.mean())
    out["train_samples"] = sizes_meta["train"]
    return out


# ---------------------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--table", default=DEFAULT_TABLE)
    p.add_argument("--reps", type=int, default=50, help="repetitions per arm (default %(default)s)")
    p.add_argument("--budget", type=int, default=384, help="B, epochs (default %(default)s = 24 full trials)")
    p.add_argument("--workers", type=int, default=2, help="concurrent trials of a search (default %(default)s)")
    p.add_argument("--valid-size", type=int, default=0,
                   help="validation samples the searches see (a multiple of the table's chunk; 0 = all)")
    p.add_argument("--first-rep", type=int, default=0,
                   help="repetitions first-rep .. first-rep + reps - 1 (sampler seeds): another offset is an "
                        "independent replicate, to confirm a finding (default %(default)s)")
    p.add_argument("--candidates", action="store_true", help="also the defaults study (grace, start-up trials)")
    p.add_argument("--aa-experiments", type=int, default=200, help="independent A/A experiments (default %(default)s)")
    p.add_argument("--jobs", type=int, default=2, help="processes (default %(default)s)")
    p.add_argument("--json", default=None, help="JSON path (default benchmarks/results/search_simulated.json)")
    args = p.parse_args()
    t0 = time.perf_counter()

    table = Table.load(args.table)
    view = table.view(args.valid_size or None)
    B = args.budget
    quarter = B // 4
    cost = RERANK[0] * RERANK[1] * view.max_t
    shared = {"budget": B, "workers": args.workers, "reps": args.reps, "first_rep": args.first_rep,
              "paper_values": {p_.name: float(v) for p_, v in zip(view.params, table.values[0])},
              "rerank_budgets": sorted({b for b in (B // 2, (3 * B) // 4, B) if b > cost})}
    arms = MAIN_ARMS + (CANDIDATE_ARMS if args.candidates else [])
    print(f"table {os.path.relpath(args.table, _REPO)}: {table.unit.shape[0]} configurations, {len(table.run_row)} runs, "
          f"validation {args.valid_size or table.meta['sizes']['valid']} / test {table.meta['sizes']['test']} samples; "
          f"B = {B} epochs, {args.workers} workers, {args.reps} repetitions, {len(arms)} arms", flush=True)

    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing as mp

    results: dict[str, list[dict]] = {a["name"]: [None] * args.reps for a in arms}
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=mp.get_context("spawn"), initializer=_init,
                             initargs=(args.table, args.valid_size or None, shared)) as pool:
        # the TPE arms first (the slow ones), then the rest
        order = sorted(((a, r) for a in arms for r in range(args.reps)), key=lambda x: x[0]["searcher"] != "tpe")
        futures = {pool.submit(run_arm, a, r): (a["name"], r) for a, r in order}
        aa_futures = [pool.submit(run_aa_block, k) for k in range(args.aa_experiments)]
        done = 0
        for fut, (name, r) in futures.items():
            results[name][r] = fut.result()
            done += 1
            if done % max(1, len(futures) // 10) == 0:
                print(f"  {done}/{len(futures)} searches simulated ({time.perf_counter() - t0:.0f} s)", flush=True)
        aa_blocks = [f.result() for f in aa_futures]
    sim_seconds = time.perf_counter() - t0

    table_best = float(view.final_test.min())
    curves = {name: np.stack([r["curve"] for r in rs]).astype(np.float64) for name, rs in results.items()
              if "curve" in rs[0]}
    random_B = curves["random"][:, B - 1]

    def rel(x: np.ndarray, seed: int) -> dict:
        d = paired_relative(x, random_B)
        lo, hi = bootstrap_mean_ci(d, seed=seed)
        return {"mean": float(d.mean()), "ci": [lo, hi]}

    out_arms = {}
    for i, a in enumerate(arms):
        name, rs = a["name"], results[a["name"]]
        entry = {"spec": a, "trials_mean": float(np.mean([r["trials"] for r in rs])),
                 "distinct_mean": float(np.mean([r["distinct"] for r in rs])),
                 "full_fidelity_mean": float(np.mean([r["full"] for r in rs])),
                 "stopped_mean": float(np.mean([r["stopped"] for r in rs]))}
        if name in curves:
            c = curves[name]
            lo, hi = bootstrap_band(c, seed=i)
            entry.update({"epochs": list(range(1, B + 1)), "mean": c.mean(axis=0).tolist(), "lo": lo.tolist(),
                          "hi": hi.tolist()})
            entry["vs_random_at_B"] = {str(b): rel(c[:, b - 1], seed=100 + i) for b in (quarter, B // 2, B)}
        else:  # re-ranking: one point per budget
            budgets = shared["rerank_budgets"]
            c = np.array([[r["rerank"][b]["test"] for b in budgets] for r in rs])
            lo, hi = bootstrap_band(c, seed=i)
            entry.update({"epochs": budgets, "mean": c.mean(axis=0).tolist(), "lo": lo.tolist(), "hi": hi.tolist()})
            entry["vs_random_at_B"] = {str(b): rel(c[:, j], seed=100 + i) for j, b in enumerate(budgets)}
            entry["rerank_tabulated_fraction"] = float(np.mean(
                [r["rerank"][B]["tabulated"] / max(r["rerank"][B]["candidates"], 1) for r in rs]))
            entry["rerank_changed_fraction"] = float(np.mean([r["rerank"][B]["changed"] for r in rs]))
            entry["rerank_candidates_mean"] = float(np.mean([r["rerank"][B]["candidates"] for r in rs]))
            curves_rerank_B = c[:, -1]
        out_arms[name] = entry

    v = verdict(curves["tpe+asha"][:, quarter - 1], curves["tpe+asha"][:, B - 1], random_B, table_best)
    v["rerank_equal_budget"] = rel(curves_rerank_B, seed=7)
    v["rerank_equal_budget"]["excludes_zero"] = bool(v["rerank_equal_budget"]["ci"][0] > 0
                                                     or v["rerank_equal_budget"]["ci"][1] < 0)
    d = paired_relative(curves_rerank_B, curves["tpe+asha"][:, B - 1])
    v["rerank_vs_tpe_asha_at_B"] = {"mean": float(d.mean()), "ci": list(bootstrap_mean_ci(d, seed=8))}
    # not part of the rule: the best a validation-driven search can return from this table (the
    # configuration with the best validation objective, every one evaluated) — the table's best by
    # test MAE is partly the luck of the test split and of the seeds, which no search can select on
    valid_best = int(np.argmin(view.objective[:, -1]))
    v["table_valid_best_row"] = valid_best
    v["table_valid_best_test"] = float(view.final_test[valid_best])
    v["random_gap_to_valid_best"] = float(np.mean(random_B)) / v["table_valid_best_test"] - 1.0

    # A/A: the main pair, then the independent experiments
    aa_main = rel(curves["random (A/A)"][:, B - 1], seed=11)
    blocks = np.stack(aa_blocks) if aa_blocks else np.zeros((0, args.reps, 2))
    aa = {"main": aa_main, **aa_calibration(blocks, v["margin"])}

    candidates = None
    if args.candidates:
        ship = curves["tpe+asha"]
        candidates = {"rank_correlation_with_final": rank_correlations(view), "arms": {}}
        for i, a in enumerate(CANDIDATE_ARMS + [x for x in MAIN_ARMS if x["name"] in ("tpe+asha", "tpe+asha, no paper start")]):
            c = curves[a["name"]]
            row = {"grace": a["grace"], "startup": a["startup"], "searcher": a["searcher"],
                   "paper_start": a["paper_start"],
                   "vs_random_at_B": {str(b): rel(c[:, b - 1], seed=200 + i) for b in (quarter, B // 2, B)}}
            if a["searcher"] == "tpe":
                row["vs_shipped"] = {}
                for b in (quarter, B // 2, B):
                    d = paired_relative(c[:, b - 1], ship[:, b - 1])
                    lo, hi = bootstrap_mean_ci(d, seed=300 + i)
                    row["vs_shipped"][str(b)] = {"mean": float(d.mean()), "ci": [lo, hi]}
            candidates["arms"][a["name"]] = row
        candidates["recommended"] = choose_defaults(candidates["arms"], (quarter, B))

    noise = split_vs_seed_noise(table)
    importance = parameter_importance(view)
    payload = {
        "args": vars(args), "machine": machine(), "seconds": round(time.perf_counter() - t0, 1),
        "simulation_seconds": round(sim_seconds, 1),
        "table": {"path": os.path.relpath(args.table, _REPO), "configurations": int(table.unit.shape[0]),
                  "runs": int(len(table.run_row)), "meta": table.meta,
                  "best_test": table_best, "best_row": int(np.argmin(view.final_test)),
                  "paper_test": float(view.final_test[0]),
                  "median_test": float(np.median(view.final_test))},
        "budget": B, "quarter": quarter, "shipped": SHIPPED, "rerank": {"top": RERANK[0], "seeds": RERANK[1]},
        "verdict": v, "aa_pass_rate": aa["pass_rate"], "aa": aa, "arms": out_arms,
        "candidates": candidates, "noise": noise, "parameter_rank_correlation": importance,
    }
    _print(payload)
    path = write_json("search_simulated", payload, args.json)
    png = _plot(payload, os.path.splitext(str(path))[0] + ".png")
    print(f"wrote {png}")
    print(f"total {time.perf_counter() - t0:.0f} s")
    return 0


def _pct(x: float) -> str:
    return f"{100 * x:+.2f} %"


def _ci(d: dict) -> str:
    return f"{_pct(d['mean'])} [{_pct(d['ci'][0])}, {_pct(d['ci'][1])}]"


def _print(P: dict) -> None:
    B, q = P["budget"], P["quarter"]
    t = P["table"]
    print(f"\ntable: best test MAE {t['best_test']:.4f} (row {t['best_row']}), paper configuration "
          f"{t['paper_test']:.4f}, median {t['median_test']:.4f}")
    print(f"\n{'arm':<24} {'trials':>7} {'distinct':>8} {'full':>6} {'test MAE @B/4':>14} {'@B':>8}   "
          f"vs random@B: @B/4, @B (mean [95 % CI])")
    for name, a in P["arms"].items():
        ep = a["epochs"]
        at = {e: m for e, m in zip(ep, a["mean"])}
        vq = a["vs_random_at_B"].get(str(q))
        vb = a["vs_random_at_B"].get(str(B))
        print(f"{name:<24} {a['trials_mean']:>7.1f} {a['distinct_mean']:>8.1f} {a['full_fidelity_mean']:>6.1f} "
              f"{at.get(q, float('nan')):>14.4f} {at.get(B, float('nan')):>8.4f}   "
              f"{_ci(vq) if vq else '-':>30}  {_ci(vb) if vb else '-'}")
    v = P["verdict"]
    print("\nVERDICT (fixed in advance; paired over "
          f"{v['reps']} repetitions, test MAE relative to random search with B = {B} epochs):")
    print(f" (i)   TPE + ASHA with B/4 = {q} epochs: {_ci({'mean': v['quarter_mean'], 'ci': v['quarter_ci']})} -> "
          + ("NON-INFERIOR (upper bound below +1 %)" if v["non_inferior_at_quarter"]
             else "NOT shown non-inferior (upper bound not below +1 %)"))
    print(f" (ii)  TPE + ASHA with B = {B} epochs: {_ci({'mean': v['equal_budget_mean'], 'ci': v['equal_budget_ci']})}"
          f" -> the CI {'excludes' if v['equal_budget_excludes_zero'] else 'includes'} 0")
    print(f"       with re-ranking (its {P['rerank']['top'] * P['rerank']['seeds'] * 16} epochs inside B): "
          f"{_ci(v['rerank_equal_budget'])}")
    print(f" (iii) random search's incumbent is {_pct(v['random_gap_to_table_best'])} above the table's best -> "
          + ("NO ROOM (within 2 %): no searcher can gain much here" if v["no_room"] else "room to improve (> 2 %)")
          + f"; 95 % CI of the gap [{_pct(v['random_gap_ci'][0])}, {_pct(v['random_gap_ci'][1])}]")
    print(f"       (not part of the rule) the configuration a search that tried all {P['table']['configurations']} "
          f"would return (best validation) has test MAE {v['table_valid_best_test']:.4f}: random search's incumbent "
          f"is {_pct(v['random_gap_to_valid_best'])} from it")
    print(f"       re-ranking vs TPE + ASHA without it, both at B: {_ci(v['rerank_vs_tpe_asha_at_B'])}")
    aa = P["aa"]
    print(f"\nA/A (random vs random, other seeds), this run's pair: {_ci(aa['main'])}")
    if aa["experiments"]:
        print(f"  over {aa['experiments']} independent A/A experiments of {aa['reps_per_experiment']} repetitions: "
              f"rule (i) passes {100 * aa['pass_rate']:.1f} % (truth 0), "
              f"{100 * aa['pass_rate_when_truth_is_margin']:.1f} % when the truth is +1 % (should be <= 2.5 %); "
              f"(ii)'s CI excludes 0 in {100 * aa['ci_excludes_zero_rate']:.1f} % (should be ~5 %); "
              f"one search vs another within +1 %: {100 * aa['single_search_within_margin']:.1f} % "
              f"(sd of their relative difference {100 * aa['single_search_rel_diff_sd']:.2f} %)")
    if P["candidates"]:
        c = P["candidates"]
        print("\nDefaults study: test MAE relative to random@B, and to the shipped TPE + ASHA (grace 4, 10 start-up)"
              " at the same budget (mean [95 % CI])")
        for name, a in c["arms"].items():
            vs = a.get("vs_shipped", {})
            print(f"  {name:<22} @B/4 {_ci(a['vs_random_at_B'][str(q)]):>30}  @B {_ci(a['vs_random_at_B'][str(B)]):>30}"
                  + (f"   vs shipped @B/4 {_ci(vs[str(q)])}, @B {_ci(vs[str(B)])}" if vs else ""))
        r = c["recommended"]
        print(f"  the rule fixed in advance recommends: grace {r['grace']}, {r['startup']} start-up trials ({r['why']})")
        rc = c["rank_correlation_with_final"]
        print("  Spearman(objective at epoch g, at epoch 16), all / good half: "
              + ", ".join(f"g={g}: {x['all']:.2f}/{x['good_half']:.2f}" for g, x in rc.items()))
    n = P["noise"]
    print(f"\nSplit noise vs seed noise (std / MAE of a configuration's best validation MAE; splits of n consecutive "
          f"samples, from the variance across the {n['valid']['chunks_per_run']} + {n['test']['chunks_per_run']} chunks of "
          f"{n['chunk']} of the validation and test splits, pooled over runs):")
    print("  split, one configuration:   " + ", ".join(f"n={k}: {100 * x:.2f} %" for k, x in n["split_rel_std"].items()))
    print("  split, a difference of two: " + ", ".join(f"n={k}: {100 * x:.2f} %" for k, x in n["split_difference_rel_std"].items()))
    print("  direct (disjoint subsets of the validation split): " + ", ".join(
        f"n={k}: {100 * x:.2f} %" for k, x in n["valid"]["rel_std_direct"].items())
          + "; of the test split: " + ", ".join(f"n={k}: {100 * x:.2f} %" for k, x in n["test"]["rel_std_direct"].items()))
    for name, s in n["seed"].items():
        print(f"  seed, {s['seeds']} training seeds x {s['configs']} configurations ('{name}'): valid "
              f"{100 * s['valid_rel_std']:.2f} % (difference of two: x1.41), test {100 * s['test_rel_std']:.2f} %")
    if "n_where_split_equals_seed" in n:
        print(f"  split noise falls below seed noise from n ≈ {n['n_where_split_equals_seed']:.0f} (one configuration's MAE), "
              f"n ≈ {n['n_where_difference_split_equals_seed']:.0f} (a difference between two)")
    if "eval_seconds_per_sample" in n:
        print(f"  cost: evaluation {1000 * n['eval_seconds_per_sample']:.2f} ms per sample per epoch, training "
              f"{n['train_seconds_per_epoch']:.2f} s per epoch ({n['train_samples']} samples), tiny encoder, 1 thread")
    print("\nparameter vs final objective (Spearman): "
          + ", ".join(f"{k} {x:+.2f}" for k, x in P["parameter_rank_correlation"].items()))


def _plot(P: dict, path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    B, q = P["budget"], P["quarter"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw={"width_ratios": [1.35, 1]})
    colours = {"random": "tab:grey", "random+asha": "tab:olive", "tpe": "tab:green", "tpe+asha": "tab:blue",
               "tpe+asha+rerank": "tab:purple", "random (A/A)": "black", "random, paper first": "tab:brown",
               "tpe+asha, no paper start": "tab:cyan"}
    for name, a in P["arms"].items():
        if name not in colours:
            continue
        if len(a["epochs"]) == B:
            ax.plot(a["epochs"], a["mean"], color=colours[name], lw=1.4, label=name,
                    ls=":" if "A/A" in name else "--" if "paper" in name else "-")
            ax.fill_between(a["epochs"], a["lo"], a["hi"], color=colours[name], alpha=0.15, lw=0)
        else:
            ax.errorbar(a["epochs"], a["mean"], yerr=[np.subtract(a["mean"], a["lo"]), np.subtract(a["hi"], a["mean"])],
                        fmt="D", color=colours[name], label=name + " (budget incl. re-rank)", capsize=3)
    ax.axhline(P["table"]["best_test"], color="tab:red", ls="--", lw=1, label="table's best")
    for x in (q, B):
        ax.axvline(x, color="k", lw=0.6, alpha=0.4)
    ax.set_xlabel("epochs spent (2 workers)")
    ax.set_ylabel("incumbent's test MAE (mean, 95 % bootstrap band)")
    ax.set_title(f"simulated searches on the table, {P['verdict']['reps']} repetitions")
    lo = min(min(a["lo"][q // 2:]) for a in P["arms"].values() if len(a["epochs"]) == B)
    hi = max(max(a["hi"][q // 4:]) for a in P["arms"].values() if len(a["epochs"]) == B)
    ax.set_ylim(min(lo, P["table"]["best_test"]) - 0.005, hi + 0.005)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)

    rows = []
    for name, a in P["arms"].items():
        for b, d in a["vs_random_at_B"].items():
            if int(b) in (q, B) and not (name == "random" and int(b) == B):
                rows.append((f"{name} @{b}", d))
    if P["candidates"]:
        for name, a in P["candidates"]["arms"].items():
            if name not in P["arms"] or True:
                for b in (q, B):
                    rows.append((f"{name} @{b}", a["vs_random_at_B"][str(b)]))
    seen, uniq = set(), []
    for label, d in rows:
        if label not in seen:
            seen.add(label)
            uniq.append((label, d))
    ys = np.arange(len(uniq))[::-1]
    for y, (label, d) in zip(ys, uniq):
        colour = "tab:blue" if "tpe" in label else "tab:grey"
        bx.errorbar(100 * d["mean"], y, xerr=[[100 * (d["mean"] - d["ci"][0])], [100 * (d["ci"][1] - d["mean"])]],
                    fmt="o", color=colour, capsize=2, ms=4)
    bx.set_yticks(ys, [lab for lab, _ in uniq], fontsize=7)
    bx.axvline(0, color="k", lw=0.8)
    bx.axvline(100 * P["verdict"]["margin"], color="tab:red", ls="--", lw=0.8, label="+1 % margin")
    bx.set_xlabel(f"test MAE vs random search at B = {B} (%, paired, 95 % CI)")
    bx.legend(fontsize=8)
    bx.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
