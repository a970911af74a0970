"""The pieces of the simulated search benchmark (`bench_search_simulated.py`), testable on their own.

A *table* (`Table`, written by `make_search_table.py`) holds, for a fixed design of configurations,
every epoch's validation and test MAE. A search is replayed on it in **epoch time**: ``workers``
asynchronous workers each train one epoch per time unit; when a worker is free it asks the searcher
for a configuration (answered with the nearest tabulated one), every epoch's objective is reported to
the scheduler, and a stopped or finished trial is told to the searcher — as Ray Tune runs the sweeps.

- objective = the trial's best validation MAE so far (`sweeps.objective`), on the whole tabulated
  validation split or on its first ``valid_size`` samples (`Table.view`);
- `AshaRule`: Ray Tune's `AsyncHyperBandScheduler` with one bracket (rungs at grace·rf^k, stop when
  the result is below the (1 − 1/rf) percentile of the rung's recorded rewards, `np.nanpercentile`,
  recorded rewards = −MAE in mode min; STOP at max_t), copied rule for rule from
  ``ray/tune/schedulers/async_hyperband.py`` (Ray 2.60);
- `TpeSearcher`: Optuna's own `TPESampler(seed, multivariate=True, constant_liar=True,
  n_startup_trials)` through ``study.ask`` and the sweeps' define-by-run function (the paper
  configuration enqueued first when ``paper_start``), told like Ray's `OptunaSearch`: a stopped
  trial COMPLETE with its last reported value;
- `RandomSearcher`: the draws of Optuna's `RandomSampler(seed)` (the same stream TPE's start-up
  trials come from, so random and TPE share their first draws: common random numbers), without the
  cost of a study;
- the **incumbent** after e epochs = the trial with the best objective reported so far, at any
  fidelity (what `sweeps.search.search_stage` returns when the search ends there: the best last
  objective over all trials, ASHA-stopped ones included); its score is the configuration's **test**
  MAE from the table as the final stage would measure it (test MAE at the best-validation epoch of
  a full-length run, mean over the table's seeds for that configuration);
- re-ranking: after the search, the best ``top`` distinct configurations that reached max_t are
  trained again on ``seeds`` new seeds (the table's extra seeds; see `TableView.rerank_values`) and
  the best mean validation objective over the new seeds wins; their epochs count against the budget.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

CONTINUE, STOP = "CONTINUE", "STOP"


# ---------------------------------------------------------------------------------------------
# the table


@dataclass
class Table:
    """The arrays of a table file (see `make_search_table.py`)."""

    meta: dict
    unit: np.ndarray  # (C, D) design in the unit cube (log scale for log parameters)
    values: np.ndarray  # (C, D) parameter values
    run_row: np.ndarray  # (R,) configuration of each run
    run_seed: np.ndarray  # (R,) training seed of each run
    valid_abs_err: np.ndarray  # (R, E, Kv) sum of |error| per chunk of `chunk` validation samples
    test_abs_err: np.ndarray  # (R, E, Kt)
    train_seconds: np.ndarray | None = None  # (R, E)
    eval_seconds: np.ndarray | None = None  # (R, E)

    @classmethod
    def load(cls, path: str | Path) -> "Table":
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(str(arrays.pop("meta")))
        return cls(meta=meta, **{k: arrays.get(k) for k in (
            "unit", "values", "run_row", "run_seed", "valid_abs_err", "test_abs_err", "train_seconds",
            "eval_seconds")})

    @property
    def chunk(self) -> int:
        return int(self.meta["chunk"])

    @property
    def base_seed(self) -> int:
        return int(self.meta["base_seed"])

    def params(self) -> tuple:
        """The searched space as `Param`s, from the table's own description."""
        from mmsa_core.methods.space import Param

        return tuple(Param(d["name"], d["low"], d["high"], d["log"], d.get("why", "")) for d in self.meta["space"])

    def view(self, valid_size: int | None = None) -> "TableView":
        """What a search sees when its validation split is the first `valid_size` samples."""
        kv = self.valid_abs_err.shape[2]
        k = kv if not valid_size else valid_size // self.chunk
        if k < 1 or k > kv or (valid_size and valid_size % self.chunk):
            raise ValueError(f"valid_size must be a multiple of {self.chunk} up to {kv * self.chunk}")
        valid = self.valid_abs_err[:, :, :k].sum(axis=2) / (k * self.chunk)
        test = self.test_abs_err.sum(axis=2) / (self.test_abs_err.shape[2] * self.chunk)
        return TableView.build(self, valid.astype(np.float64), test.astype(np.float64))


@dataclass
class TableView:
    """Per-configuration curves for one validation split size."""

    unit: np.ndarray  # (C, D)
    objective: np.ndarray  # (C, E) best validation MAE so far, training seed `base_seed`
    final_test: np.ndarray  # (C,) test MAE at the best-validation epoch, mean over the table's seeds
    final_valid_by_seed: list[dict[int, float]]  # per configuration: seed -> best validation MAE
    base_seed: int
    params: tuple = ()
    residuals: np.ndarray = field(default_factory=lambda: np.zeros(0))  # extra seed − base seed, final objective

    @classmethod
    def build(cls, table: Table, valid: np.ndarray, test: np.ndarray) -> "TableView":
        n_cfg, n_ep = table.unit.shape[0], valid.shape[1]
        objective = np.full((n_cfg, n_ep), np.nan)
        tests: list[list[float]] = [[] for _ in range(n_cfg)]
        by_seed: list[dict[int, float]] = [{} for _ in range(n_cfg)]
        for r, (row, seed) in enumerate(zip(table.run_row, table.run_seed)):
            best_epoch = int(np.argmin(valid[r]))  # first minimum, as the trainer's strict `<`
            tests[row].append(float(test[r, best_epoch]))
            by_seed[row][int(seed)] = float(valid[r].min())
            if int(seed) == table.base_seed:
                objective[row] = np.minimum.accumulate(valid[r])
        if np.isnan(objective).any():
            raise ValueError("every configuration needs a run with the base seed")
        res = [v - d[table.base_seed] for d in by_seed for s, v in d.items() if s != table.base_seed]
        return cls(unit=table.unit, objective=objective, final_test=np.array([np.mean(t) for t in tests]),
                   final_valid_by_seed=by_seed, base_seed=table.base_seed, params=table.params(),
                   residuals=np.array(res))

    @property
    def max_t(self) -> int:
        return self.objective.shape[1]

    def rerank_values(self, row: int, seeds: int, draw_seed: Sequence[int] = (0,)) -> tuple[float, bool]:
        """Mean best validation MAE of `row` over `seeds` new training seeds, and whether the table
        had them all. Where it has fewer extra seeds than asked, each missing one is the base seed's
        value plus a residual (some configuration's extra seed − its base seed) drawn with
        ``default_rng([*draw_seed, row])``: the same draw for the same repetition and row in every arm."""
        got = [v for s, v in sorted(self.final_valid_by_seed[row].items()) if s != self.base_seed][:seeds]
        tabulated = len(got) == seeds
        base = self.final_valid_by_seed[row][self.base_seed]
        if len(got) < seeds:
            rng = np.random.default_rng([*draw_seed, row])
            draws = rng.choice(self.residuals, size=seeds) if self.residuals.size else np.zeros(seeds)
            got += [base + float(d) for d in draws[len(got):]]
        return float(np.mean(got)), tabulated


# ---------------------------------------------------------------------------------------------
# the space: unit cube <-> values, nearest configuration


def to_unit(values: dict[str, float], params: Sequence) -> np.ndarray:
    """A configuration's position in the unit cube (log scale where the parameter is log)."""
    out = np.empty(len(params))
    for j, p in enumerate(params):
        x = float(values[p.name])
        if p.log:
            out[j] = (math.log(x) - math.log(p.low)) / (math.log(p.high) - math.log(p.low))
        else:
            out[j] = (x - p.low) / (p.high - p.low)
    return out


def nearest_row(unit: np.ndarray, point: np.ndarray) -> int:
    """Index of the design row nearest to `point` (Euclidean distance in the unit cube; ties: lowest)."""
    return int(np.argmin(((unit - point[None, :]) ** 2).sum(axis=1)))


# ---------------------------------------------------------------------------------------------
# ASHA, as Ray Tune's AsyncHyperBandScheduler with one bracket


class AshaRule:
    """Ray Tune's `AsyncHyperBandScheduler(time_attr, max_t, grace_period, reduction_factor)` in mode
    min, one bracket (``brackets=1``, ``stop_last_trials=True``): the same rungs, cutoff and order."""

    def __init__(self, max_t: int, grace_period: int, reduction_factor: float):
        assert max_t >= grace_period > 0 and reduction_factor > 1
        self.max_t, self.rf = max_t, reduction_factor
        n_rungs = int(np.log(max_t / grace_period) / np.log(reduction_factor) - 0 + 1)
        self.rungs: list[tuple[float, dict[Any, float]]] = [
            (grace_period * reduction_factor ** k, {}) for k in reversed(range(n_rungs))]

    @property
    def milestones(self) -> list[float]:
        return sorted(m for m, _ in self.rungs)

    def cutoff(self, recorded: dict) -> float | None:
        if not recorded:
            return None
        return float(np.nanpercentile(list(recorded.values()), (1 - 1 / self.rf) * 100))

    def on_result(self, trial_id: Any, t: int, value: float) -> str:
        """`value` is the minimised metric (MAE); Ray records reward = −value."""
        if t >= self.max_t:
            return STOP
        reward = -value
        action = CONTINUE
        for milestone, recorded in self.rungs:
            if t < milestone or trial_id in recorded:
                continue
            cutoff = self.cutoff(recorded)
            if cutoff is not None and reward < cutoff:
                action = STOP
            recorded[trial_id] = reward
            break
        return action


class FifoRule:
    """No early stopping: every trial runs max_t epochs (MMSA's tune mode; ASHA with grace = max_t)."""

    def __init__(self, max_t: int):
        self.max_t = max_t

    def on_result(self, trial_id: Any, t: int, value: float) -> str:
        return STOP if t >= self.max_t else CONTINUE


# ---------------------------------------------------------------------------------------------
# searchers


class RandomSearcher:
    """The draws of Optuna's ``RandomSampler(seed)`` for the define-by-run space (one uniform per
    parameter and trial, in the space's order, on the log scale for log parameters), mapped to the
    nearest tabulated configuration. `tests/benchmarks` checks the draws equal Optuna's."""

    def __init__(self, view: TableView, seed: int, first_row: int | None = None):
        self.view = view
        self.rng = np.random.RandomState(seed)
        self.asked = 0
        self.first_row = first_row  # e.g. the paper configuration's row, evaluated first (no draw spent)

    def draw(self) -> dict[str, float]:
        out = {}
        for p in self.view.params:
            lo, hi = (math.log(p.low), math.log(p.high)) if p.log else (p.low, p.high)
            u = float(self.rng.uniform(np.array([lo]), np.array([hi]))[0])
            out[p.name] = min(max(math.exp(u) if p.log else u, p.low), p.high)
        return out

    def ask(self) -> tuple[Any, int]:
        self.asked += 1
        if self.asked == 1 and self.first_row is not None:
            return None, self.first_row
        return None, nearest_row(self.view.unit, to_unit(self.draw(), self.view.params))

    def tell(self, handle: Any, value: float) -> None:
        pass


class TpeSearcher:
    """Optuna's TPESampler as `sweeps.search.optuna_search` builds it, asked through the sweeps'
    define-by-run function; the proposal is answered with the nearest tabulated configuration (its
    curve is what the trial reports), and the trial is told with the value Ray's OptunaSearch tells."""

    def __init__(self, view: TableView, seed: int, *, n_startup_trials: int = 10, paper_start: bool = True,
                 paper_values: dict[str, float] | None = None):
        import optuna

        from sweeps.spaces import define_by_run

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        self.view = view
        self._define = define_by_run
        sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True,
                                             n_startup_trials=n_startup_trials)
        self.study = optuna.create_study(direction="minimize", sampler=sampler)
        if paper_start:
            self.study.enqueue_trial(dict(paper_values))
        self.asked = 0

    def ask(self) -> tuple[Any, int]:
        trial = self.study.ask()
        self._define(trial, params=self.view.params)
        self.asked += 1
        return trial, nearest_row(self.view.unit, to_unit(trial.params, self.view.params))

    def tell(self, handle: Any, value: float) -> None:
        self.study.tell(handle, value)


# ---------------------------------------------------------------------------------------------
# the simulation


@dataclass
class SearchTrace:
    curve: np.ndarray  # (budget,) incumbent's test MAE after e = 1..budget epochs
    incumbent_row: int  # at the end
    incumbent_objective: float
    trials: list[dict]  # row, epochs run, last objective, stopped by the scheduler before max_t
    spent: int
    snapshots: dict[int, list[dict]] = field(default_factory=dict)  # spent -> trials at that moment


def full_fidelity_rows(trials: list[dict], max_t: int) -> list[tuple[float, int]]:
    """(objective, row) of the distinct configurations with a trial that ran max_t epochs, best first."""
    best: dict[int, float] = {}
    for t in trials:
        if t["epochs"] >= max_t:
            best[t["row"]] = min(best.get(t["row"], math.inf), t["objective"])
    return sorted((v, r) for r, v in best.items())


def _public(t: dict) -> dict:
    return {k: t[k] for k in ("row", "epochs", "objective", "stopped")}


def simulate(view: TableView, searcher, scheduler, budget: int, workers: int = 2,
             snapshots: Sequence[int] = ()) -> SearchTrace:
    """Replay a search in epoch time until exactly `budget` epochs are spent.

    Each time unit, every free worker (in worker order) asks the searcher for a configuration, then
    every worker trains one epoch of its trial and reports the objective (best validation MAE so
    far) to the scheduler; a trial stopped by the scheduler (ASHA, or max_t) is told to the searcher
    and frees its worker. Trials still running when the budget is reached are cut there (their
    reports so far count). `snapshots`: spent-epoch counts at which to keep a copy of the trials."""
    max_t = view.max_t
    running: list[dict | None] = [None] * workers
    trials: list[dict] = []
    curve = np.empty(budget)
    inc_value, inc_row = math.inf, -1
    spent = 0
    shots: dict[int, list[dict]] = {}
    wanted = set(int(s) for s in snapshots)
    while spent < budget:
        for w in range(workers):
            if running[w] is None:
                handle, row = searcher.ask()
                running[w] = {"id": len(trials), "row": row, "handle": handle, "epochs": 0,
                              "objective": math.inf, "stopped": False}
                trials.append(running[w])
        for w in range(workers):
            if spent >= budget:
                break
            t = running[w]
            t["epochs"] += 1
            value = float(view.objective[t["row"], t["epochs"] - 1])
            t["objective"] = value
            spent += 1
            if value < inc_value:
                inc_value, inc_row = value, t["row"]
            curve[spent - 1] = view.final_test[inc_row]
            if scheduler.on_result(t["id"], t["epochs"], value) == STOP:
                t["stopped"] = t["epochs"] < max_t
                searcher.tell(t["handle"], value)
                running[w] = None
            if spent in wanted:
                shots[spent] = [_public(x) for x in trials]
    return SearchTrace(curve=curve, incumbent_row=inc_row, incumbent_objective=inc_value,
                       trials=[_public(t) for t in trials], spent=spent, snapshots=shots)


def rerank(view: TableView, trials: list[dict], top: int, seeds: int, draw_seed: Sequence[int] = (0,)) -> dict:
    """The re-ranking step after a search (`trials` as it ended): the winner's row and test MAE, the
    epochs re-ranking cost, and how many candidates' new-seed values the table held."""
    cands = full_fidelity_rows(trials, view.max_t)[:top]
    if not cands:  # nothing reached full fidelity: the search's own incumbent stands
        value, row = min((t["objective"], t["row"]) for t in trials)
        return {"row": row, "test": float(view.final_test[row]), "epochs": 0, "tabulated": 0,
                "candidates": 0, "changed": False}
    scored, tabulated = [], 0
    for _, row in cands:
        value, ok = view.rerank_values(row, seeds, draw_seed)
        tabulated += ok
        scored.append((value, row))
    value, row = min(scored)
    return {"row": row, "test": float(view.final_test[row]), "epochs": len(cands) * seeds * view.max_t,
            "tabulated": tabulated, "candidates": len(cands), "changed": row != cands[0][1]}


# ---------------------------------------------------------------------------------------------
# statistics


def bootstrap_mean_ci(x: np.ndarray, n_boot: int = 10_000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of `x` (1-D; resampling its entries)."""
    x = np.asarray(x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    means = x[idx].mean(axis=1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def bootstrap_band(curves: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise 95 % percentile bootstrap band of the mean of `curves` (reps × points) over reps."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, curves.shape[0], size=(n_boot, curves.shape[0]))
    means = curves[idx].mean(axis=1)  # (n_boot, points)
    return np.quantile(means, 0.025, axis=0), np.quantile(means, 0.975, axis=0)


def paired_relative(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per repetition, a's test MAE relative to b's: a / b − 1 (positive = a is worse)."""
    return np.asarray(a, dtype=np.float64) / np.asarray(b, dtype=np.float64) - 1.0


def verdict(tpe_asha_quarter: np.ndarray, tpe_asha_full: np.ndarray, random_full: np.ndarray,
            table_best: float, *, margin: float = 0.01, room: float = 0.02, n_boot: int = 10_000,
            seed: int = 0) -> dict:
    """The verdict fixed in advance (all paired over repetitions, test MAE, relative to random at B):

    (i) non-inferior at a quarter: the upper end of the 95 % bootstrap CI of mean(TPE+ASHA at B/4 /
        random at B − 1) is below +`margin`;
    (ii) equal budget: the 95 % CI of mean(TPE+ASHA at B / random at B − 1), and whether it excludes 0;
    (iii) no room: the table's best test MAE is within `room` of random's mean incumbent at B
        (random's mean / best − 1 < room): nothing much is left for any searcher to find.
    """
    d_quarter = paired_relative(tpe_asha_quarter, random_full)
    d_full = paired_relative(tpe_asha_full, random_full)
    q_lo, q_hi = bootstrap_mean_ci(d_quarter, n_boot, seed)
    f_lo, f_hi = bootstrap_mean_ci(d_full, n_boot, seed + 1)
    gap = float(np.mean(random_full)) / table_best - 1.0
    g_lo, g_hi = bootstrap_mean_ci(np.asarray(random_full, dtype=np.float64) / table_best - 1.0, n_boot, seed + 2)
    return {
        "non_inferior_at_quarter": bool(q_hi < margin),
        "quarter_mean": float(d_quarter.mean()), "quarter_ci": [q_lo, q_hi],
        "equal_budget_mean": float(d_full.mean()), "equal_budget_ci": [f_lo, f_hi],
        "equal_budget_excludes_zero": bool(f_lo > 0 or f_hi < 0),
        "no_room": bool(gap < room), "random_gap_to_table_best": gap, "random_gap_ci": [g_lo, g_hi],
        "margin": margin, "room": room, "reps": int(len(d_full)),
    }


def aa_calibration(blocks: np.ndarray, margin: float = 0.01, n_boot: int = 2000) -> dict:
    """The verdict's rules applied where the truth is known: `blocks` (experiments × reps × 2) holds
    the final test MAEs of pairs of independent random searches (arm 1 vs arm 0, truth 0).

    pass_rate: how often rule (i) declares arm 1 non-inferior (its power at truth 0);
    pass_rate_when_truth_is_margin: the same with arm 1 made 1 + `margin` times worse (a false pass;
    should be at most 2.5 %, the one-sided level of a 95 % CI); ci_excludes_zero_rate: how often
    rule (ii)'s CI excludes 0 (should be near 5 %)."""
    blocks = np.asarray(blocks, dtype=np.float64)
    passes, passes_shifted, excl = [], [], []
    for k, blk in enumerate(blocks):
        d = paired_relative(blk[:, 1], blk[:, 0])
        lo, hi = bootstrap_mean_ci(d, n_boot=n_boot, seed=1000 + k)
        passes.append(hi < margin)
        excl.append(lo > 0 or hi < 0)
        d1 = paired_relative(blk[:, 1] * (1 + margin), blk[:, 0])
        passes_shifted.append(bootstrap_mean_ci(d1, n_boot=n_boot, seed=1000 + k)[1] < margin)
    per_rep = paired_relative(blocks[..., 1], blocks[..., 0]).ravel() if len(blocks) else np.zeros(0)
    return {"experiments": int(len(blocks)), "reps_per_experiment": int(blocks.shape[1]) if blocks.ndim == 3 else 0,
            "pass_rate": float(np.mean(passes)) if passes else None,
            "pass_rate_when_truth_is_margin": float(np.mean(passes_shifted)) if passes else None,
            "ci_excludes_zero_rate": float(np.mean(excl)) if excl else None,
            "single_search_within_margin": float(np.mean(per_rep < margin)) if per_rep.size else None,
            "single_search_rel_diff_sd": float(per_rep.std(ddof=1)) if per_rep.size > 1 else None}
