"""Summary of a sweep's search stage: best trials, parameter importances, history, compute saved.

Selection reads validation only (`best/valid/<objective>`); test metrics never enter here. The
objective is the sweep's own (`metric`/`mode` of its `search_space.json` artifact) when it is a
`best/valid/<m>` metric, else validation MAE (minimised).

ASHA stops trials at low fidelity and Optuna is told those trials COMPLETED with their last
value (docs/SWEEPS.md, Mixed fidelities), so importances use only full-fidelity trials: with a `stop_reason`
tag (written by `sweeps/`: scheduler | patience | max_epochs) those not stopped by the scheduler;
without one, those that ran `max_epochs` epochs or whose `stopped_early` tag is `false`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from reports.tables import TextTable, fmt_num, metric_spec

EVALUATORS: Mapping[str, str] = {
    "ped-anova": "PED-ANOVA (optuna.importance.PedAnovaImportanceEvaluator)",
    "fanova": "fANOVA (optuna.importance.FanovaImportanceEvaluator, seed 0)",
}
MIN_IMPORTANCE_TRIALS = 3
NOT_SEARCHED = frozenset({"seed"})  # varies per trial by design; never a hyperparameter


@dataclass(frozen=True)
class SpaceInfo:
    """What a sweep's `search_space.json` says: searched names, float ranges, objective."""

    names: tuple[str, ...]
    ranges: Mapping[str, tuple[float, float, bool]] = field(default_factory=dict)  # name -> (low, high, log)
    metric: str | None = None  # e.g. "best/valid/mae"
    mode: str | None = None  # "min" | "max"
    kinds: Mapping[str, str] = field(default_factory=dict)  # name -> "float" | "int" | "categorical"
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # categorical name -> choices (as text)
    # the search budget: trials asked for, the sampler, ASHA's grace_period / reduction_factor / max_t
    num_samples: int | None = None
    sampler: str | None = None
    asha: Mapping[str, float] = field(default_factory=dict)


def parse_search_space(data: Any) -> SpaceInfo | None:
    """Read the `search_space.json` of `sweeps/` ({"params": [{"name", "low", "high", "log"} or
    {"name", "kind": "categorical", "choices"} or {..., "kind": "int"}, ...], "metric", "mode",
    "num_samples", "sampler", "asha": {"grace_period", "reduction_factor", "max_t"}, ...}) or a plain
    {name: spec} mapping. None when it is neither."""
    if not isinstance(data, dict):
        return None
    params = data.get("params")
    if isinstance(params, list) and all(isinstance(p, dict) and "name" in p for p in params):
        ranges, kinds, choices = {}, {}, {}
        for p in params:
            name = str(p["name"])
            kinds[name] = str(p.get("kind", "float"))
            if kinds[name] == "categorical" and isinstance(p.get("choices"), list):
                choices[name] = tuple(str(c) for c in p["choices"])
                continue
            try:
                ranges[name] = (float(p["low"]), float(p["high"]), bool(p.get("log", False)))
            except (KeyError, TypeError, ValueError):
                pass
        metric, mode = data.get("metric"), data.get("mode")
        samples, sampler, asha = data.get("num_samples"), data.get("sampler"), data.get("asha")
        return SpaceInfo(tuple(str(p["name"]) for p in params), ranges,
                         metric if isinstance(metric, str) else None, mode if mode in ("min", "max") else None,
                         kinds, choices,
                         num_samples=samples if isinstance(samples, int) and not isinstance(samples, bool) else None,
                         sampler=sampler if isinstance(sampler, str) else None,
                         asha={k: v for k, v in asha.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
                         if isinstance(asha, dict) else {})
    if data and all(isinstance(k, str) for k in data):
        return SpaceInfo(tuple(sorted(data)))
    return None


@dataclass(frozen=True)
class HistoryPoint:
    order: int  # 1-based, by start time
    trial: str
    value: float
    best_so_far: float
    full_fidelity: bool


@dataclass(frozen=True)
class Importances:
    evaluator: str  # EVALUATORS value
    n_trials: int  # full-fidelity trials used
    values: Mapping[str, float]  # param -> importance (sums to 1), most important first
    message: str = ""  # why there are none, if there are none


@dataclass(frozen=True)
class Compute:
    n_trials: int
    epochs_run: float
    budget: float  # Σ max_epochs over trials
    n_full: int

    @property
    def saved_fraction(self) -> float:
        return 1.0 - self.epochs_run / self.budget if self.budget > 0 else math.nan


@dataclass(frozen=True)
class SweepSummary:
    objective: str  # e.g. best/valid/mae
    minimize: bool
    searched: tuple[str, ...]
    best_trials: TextTable
    importances: Importances
    history: tuple[HistoryPoint, ...]
    compute: Compute
    notes: tuple[str, ...] = field(default_factory=tuple)


def searched_params(frame: Any, space_keys: Sequence[str] | None = None) -> list[str]:
    """Params of the search space: the keys of `search_space.json` when given and present,
    else every param that takes more than one value across the trials (seed excluded)."""
    params = [c[len("params."):] for c in frame.columns if c.startswith("params.")]
    if space_keys:
        chosen = [p for p in params if p in set(space_keys)]
        if chosen:
            return sorted(chosen)
    return sorted(p for p in params if p not in NOT_SEARCHED
                  and frame[f"params.{p}"].dropna().astype(str).nunique() > 1)


def full_fidelity_mask(frame: Any) -> list[bool]:
    """stop_reason != scheduler when tagged; else epochs_run == max_epochs or stopped_early false."""
    n = len(frame)
    runs = frame["metrics.epochs_run"] if "metrics.epochs_run" in frame.columns else [math.nan] * n
    budgets = frame["params.max_epochs"] if "params.max_epochs" in frame.columns else [math.nan] * n
    reasons = frame["stop_reason"] if "stop_reason" in frame.columns else [None] * n
    out = []
    for run, budget, stopped, reason in zip(runs, budgets, frame["stopped_early"], reasons):
        if isinstance(reason, str) and reason:
            out.append(reason != "scheduler")
            continue
        reached = _finite(run) and _finite(budget) and float(run) >= float(budget)
        ended = stopped is not None and not _isna(stopped) and not bool(stopped)
        out.append(bool(reached or ended))
    return out


def sweep_objective(space: SpaceInfo | None) -> tuple[str, bool]:
    """(validation metric the sweep selected on, whether lower is better); MAE when not recorded."""
    objective, minimize = "mae", True
    if space and space.metric and space.metric.startswith("best/valid/"):
        objective = space.metric[len("best/valid/"):]
        minimize = space.mode == "min" if space.mode else not metric_spec(objective).higher_is_better
    return objective, minimize


def summarize_sweep(frame: Any, *, evaluator: str = "ped-anova", top_k: int = 5,
                    space: SpaceInfo | None = None, id: str = "sweep") -> SweepSummary:
    """Everything the sweep section shows, from the FINISHED `stage=search` runs of one sweep."""
    if evaluator not in EVALUATORS:
        raise ValueError(f"unknown importance evaluator {evaluator!r}; choose one of {sorted(EVALUATORS)}")
    objective, minimize = sweep_objective(space)
    spec = metric_spec(objective)
    col = f"metrics.best/valid/{objective}"
    notes = []
    frame = frame.sort_values("start_time").reset_index(drop=True)
    full = full_fidelity_mask(frame)
    frame = frame.assign(_full=full)
    if col not in frame.columns:
        frame[col] = math.nan
    scored = frame[frame[col].notna()]
    if len(scored) < len(frame):
        notes.append(f"{len(frame) - len(scored)} search trial(s) logged no {col[8:]} and are left out of "
                     "the ranking, the history and the importances")
    searched = searched_params(frame, space.names if space else None)
    return SweepSummary(
        objective=col[len("metrics."):], minimize=minimize, searched=tuple(searched),
        best_trials=_best_trials(scored, col, spec, minimize, searched, top_k, id),
        importances=_importances(scored[scored["_full"]], col, minimize, searched, evaluator, domain=frame,
                                 ranges=space.ranges if space else {}, space=space),
        history=tuple(_history(scored, col, minimize)),
        compute=_compute(frame), notes=tuple(notes))


def _best_trials(frame: Any, col: str, spec: Any, minimize: bool, searched: Sequence[str], top_k: int,
                 id: str) -> TextTable:
    ranked = frame.sort_values(col, ascending=minimize, kind="stable").head(top_k)
    extra = [m for m in ("mae", "corr", "acc2_non0") if m != spec.key]
    headers = ["Rank", "Trial", f"valid {spec.header} {'↓' if minimize else '↑'}"]
    headers += [f"valid {metric_spec(m).header}" for m in extra] + ["Epochs run", "Full fidelity"] + list(searched)
    rows, values = [], []
    for rank, (_, r) in enumerate(ranked.iterrows(), start=1):
        trial = str(r["trial_id"] or r["run_name"] or r["run_id"][:8])
        cells = [str(rank), trial, fmt_num(float(r[col]) * spec.scale, spec.decimals + (1 if spec.scale == 1 else 0))]
        raw = [rank, trial, float(r[col]) * spec.scale]
        for m in extra:
            v = r.get(f"metrics.best/valid/{m}", math.nan)
            cells.append(fmt_num(float(v) * metric_spec(m).scale, metric_spec(m).decimals) if _finite(v) else "n/a")
            raw.append(float(v) * metric_spec(m).scale if _finite(v) else None)
        epochs, budget = r.get("metrics.epochs_run", math.nan), r.get("params.max_epochs", math.nan)
        cells.append(f"{_fmt_int(epochs)}/{_fmt_int(budget)}")
        cells.append("yes" if r["_full"] else "no")
        cells += [_fmt_param(r.get(f"params.{p}")) for p in searched]
        raw += [float(epochs) if _finite(epochs) else None, float(budget) if _finite(budget) else None,
                bool(r["_full"])]
        raw += [_raw_param(r.get(f"params.{p}")) for p in searched]
        rows.append(tuple(cells))
        values.append(tuple(raw))
    caption = (f"Best {len(rows)} of {len(frame)} finished search trials ranked by validation "
               f"{spec.header} at the best validation epoch (test metrics are never used for selection).")
    value_headers = ["rank", "trial", f"valid_{spec.key}"] + [f"valid_{m}" for m in extra]
    value_headers += ["epochs_run", "max_epochs", "full_fidelity"] + list(searched)
    return TextTable(id=f"{id}-best-trials", title="Best trials", caption=caption, headers=tuple(headers),
                     rows=tuple(rows), numeric=(True, False) + (True,) * (len(extra) + 2) + (False,)
                     + (True,) * len(searched), value_headers=tuple(value_headers), values=tuple(values))


def _importances(frame: Any, col: str, minimize: bool, searched: Sequence[str], evaluator: str, *,
                 domain: Any, ranges: Mapping[str, tuple[float, float, bool]],
                 space: SpaceInfo | None = None) -> Importances:
    """Importances over the trials of `frame`. A parameter's distribution is the one declared in
    search_space.json when known (float range, int range, categorical choices), else the span of the
    values seen in `domain` (all finished trials), log-scaled when that span covers two decades."""
    name = EVALUATORS[evaluator]
    n = len(frame)
    if n < MIN_IMPORTANCE_TRIALS:
        return Importances(name, n, {}, f"only {n} full-fidelity trial(s); importances need at least "
                                        f"{MIN_IMPORTANCE_TRIALS} — none computed")
    if not searched:
        return Importances(name, n, {}, "no searched parameter varies across the trials — none computed")
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {}
    for p in searched:
        values = [v for v in domain[f"params.{p}"] if v is not None and not _isna(v)]
        if not values:
            continue
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        kind = space.kinds.get(p, "float") if space else "float"
        if kind == "categorical":
            declared = space.choices.get(p, ())
            dists[p] = CategoricalDistribution(sorted(set(declared) | {str(v) for v in values}))
        elif kind == "int" and numeric:
            lo, hi, _ = ranges.get(p, (min(values), max(values), False))
            dists[p] = IntDistribution(int(min(lo, *values)), int(max(hi, *values)))
        elif p in ranges and numeric:
            lo, hi, log = ranges[p]
            dists[p] = FloatDistribution(min(lo, *values), max(hi, *values), log=log)
        elif not numeric:
            dists[p] = CategoricalDistribution(sorted({str(v) for v in values}))
        elif all(isinstance(v, int) for v in values):
            dists[p] = IntDistribution(int(min(values)), int(max(values)))
        else:
            lo, hi = float(min(values)), float(max(values))
            dists[p] = FloatDistribution(lo, hi, log=lo > 0 and hi / lo >= 100)  # spans two decades
    trials = []
    for _, r in frame.iterrows():
        params = {}
        for p, d in dists.items():
            v = r[f"params.{p}"]
            if v is None or _isna(v):
                break
            params[p] = str(v) if isinstance(d, CategoricalDistribution) else (int(v) if isinstance(d, IntDistribution) else float(v))
        else:
            trials.append(optuna.trial.create_trial(params=params, distributions=dists, value=float(r[col])))
    study = optuna.create_study(direction="minimize" if minimize else "maximize")
    study.add_trials(trials)
    ev = (optuna.importance.PedAnovaImportanceEvaluator() if evaluator == "ped-anova"
          else optuna.importance.FanovaImportanceEvaluator(seed=0))
    try:
        values = optuna.importance.get_param_importances(study, evaluator=ev)
    except (RuntimeError, ValueError) as exc:
        return Importances(name, len(trials), {}, f"{name} failed: {exc}")
    return Importances(name, len(trials), {k: float(v) for k, v in values.items()})


def _history(frame: Any, col: str, minimize: bool) -> list[HistoryPoint]:
    points, best = [], math.nan
    for i, (_, r) in enumerate(frame.iterrows(), start=1):
        v = float(r[col])
        best = v if math.isnan(best) else (min(best, v) if minimize else max(best, v))
        points.append(HistoryPoint(i, str(r["trial_id"] or r["run_id"][:8]), v, best, bool(r["_full"])))
    return points


def _compute(frame: Any) -> Compute:
    runs = frame["metrics.epochs_run"] if "metrics.epochs_run" in frame.columns else []
    budgets = frame["params.max_epochs"] if "params.max_epochs" in frame.columns else []
    pairs = [(float(a), float(b)) for a, b in zip(runs, budgets) if _finite(a) and _finite(b)]
    return Compute(n_trials=len(pairs), epochs_run=sum(a for a, _ in pairs), budget=sum(b for _, b in pairs),
                   n_full=int(sum(frame["_full"])))


def _finite(v: Any) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _isna(v: Any) -> bool:
    try:
        import pandas as pd

        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _fmt_int(v: Any) -> str:
    return str(int(float(v))) if _finite(v) else "?"


def _raw_param(v: Any) -> Any:
    """A param as CSV holds it: numbers stay numbers, lists as their printed form, missing empty."""
    if v is None or _isna(v):
        return None
    if isinstance(v, tuple):
        return _fmt_param(v)
    return v


def _fmt_param(v: Any) -> str:
    if v is None or _isna(v):
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, tuple):
        return "[" + ", ".join(map(str, v)) + "]"
    return str(v)
