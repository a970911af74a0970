"""The re-rank stage of a sweep as a reviewer reads it: how optimistic the search's best number was.

A search reports the best of many noisy validation values, so that value is biased low (the
winner's curse). The sweep trains its best configurations again on new seeds (children
``stage=rerank``, tag ``source_trial_id``) and selects the best mean. This module rebuilds that
table from MLflow alone — each candidate's search value, its value on every new seed, mean ± std
over the search run (when it ran to full length) and the new seeds, and the optimism: mean of the
new seeds minus the search value, signed so that > 0 means the search value was too good.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

from reports.sweep_summary import full_fidelity_mask
from reports.tables import TextTable, fmt_num, metric_spec


@dataclass(frozen=True)
class RerankSummary:
    table: TextTable
    text: str  # the optimism in words (the paragraph under the table)
    optimism: float | None  # of the search's best trial, in the metric's units (> 0: optimistic)


@dataclass(frozen=True)
class _Candidate:
    trial: str
    search: float | None  # the search run's best validation value
    full: bool  # the search run ran to max_epochs (its value counts in the mean)
    seeds: dict[int, float]

    def values(self) -> list[float]:
        fresh = list(self.seeds.values())
        return ([self.search] if self.full and self.search is not None else []) + fresh if fresh else (
            [self.search] if self.search is not None else [])


def summarize_rerank(rerank: Any, search: Any, *, objective: str, minimize: bool, winner: str | None,
                     search_best: str | None, id: str) -> RerankSummary | None:
    """The re-rank table of one sweep from its FINISHED ``stage=rerank`` and ``stage=search`` runs;
    None without re-rank runs."""
    col = f"metrics.best/valid/{objective}"
    if rerank is None or rerank.empty or col not in rerank.columns:
        return None
    spec = metric_spec(objective)
    sign = 1.0 if minimize else -1.0
    full = dict(zip(search["trial_id"], full_fidelity_mask(search))) if len(search) else {}
    search_value = ({t: float(v) for t, v in zip(search["trial_id"], search[col]) if _finite(v)}
                    if col in search.columns else {})
    candidates = []
    for trial, runs in rerank.groupby("source_trial_id", sort=False):
        seeds = {int(s): float(v) for s, v in zip(runs["seed"], runs[col]) if _finite(v) and s is not None}
        candidates.append(_Candidate(str(trial), search_value.get(str(trial)), bool(full.get(str(trial))), seeds))
    candidates.sort(key=lambda c: sign * statistics.fmean(c.values()) if c.values() else math.inf)
    all_seeds = sorted({s for c in candidates for s in c.seeds})
    d = spec.decimals + (1 if spec.scale == 1 else 0)
    arrow = "↓" if minimize else "↑"
    headers = ("Trial", f"search {spec.header} {arrow}", *(f"seed {s}" for s in all_seeds), "Mean ± std (n)",
               "Optimism", "Selected")
    rows, values = [], []
    for c in candidates:
        vals = c.values()
        mean = statistics.fmean(vals) if vals else math.nan
        std = statistics.stdev(vals) if len(vals) > 1 else 0.0
        opt = sign * (statistics.fmean(c.seeds.values()) - c.search) if c.seeds and c.search is not None else None
        search_cell = "n/a" if c.search is None else fmt_num(c.search * spec.scale, d) + ("" if c.full else " (stopped early)")
        rows.append((c.trial, search_cell, *(fmt_num(c.seeds[s] * spec.scale, d) if s in c.seeds else "–"
                                             for s in all_seeds),
                     f"{fmt_num(mean * spec.scale, d)} ± {fmt_num(std * spec.scale, d)} ({len(vals)})",
                     "n/a" if opt is None else f"{opt * spec.scale:+.{d}f}", "yes" if c.trial == winner else ""))
        values.append((c.trial, c.search, *(c.seeds.get(s) for s in all_seeds), mean, std, len(vals), opt,
                       c.trial == winner))
    caption = (f"The best search configurations trained again on {len(all_seeds)} new seed(s); validation "
               f"{spec.header} at the best validation epoch. The mean counts the search run only when it ran "
               "to full length. Optimism = mean over the new seeds − the search value (> 0: the search value "
               "was better than the configuration is). The selected configuration has the best mean.")
    table = TextTable(id=f"{id}-rerank", title="Re-ranking on new seeds", caption=caption, headers=headers,
                      rows=tuple(rows), numeric=(False, *(True,) * (len(headers) - 2), False),
                      value_headers=("trial", f"search_valid_{objective}", *(f"seed_{s}" for s in all_seeds),
                                     "mean", "std", "n", "optimism", "selected"),
                      values=tuple(values))
    best = next((c for c in candidates if c.trial == search_best), None)
    optimism = (sign * (statistics.fmean(best.seeds.values()) - best.search)
                if best and best.seeds and best.search is not None else None)
    return RerankSummary(table, _in_words(best, optimism, winner, candidates, spec, d, minimize), optimism)


def _in_words(best: _Candidate | None, optimism: float | None, winner: str | None, candidates: list[_Candidate],
              spec: Any, d: int, minimize: bool) -> str:
    if best is None or optimism is None or best.search is None or best.search == 0:
        return "The search's best trial has no re-rank runs: its optimism is unknown."
    fresh = statistics.fmean(best.seeds.values())
    rel = 100 * optimism / abs(best.search)
    words = "optimistic" if optimism > 0 else "pessimistic"
    text = (f"The search's best trial ({best.trial}) scored validation {spec.header} "
            f"{fmt_num(best.search * spec.scale, d)}; trained again on {len(best.seeds)} new seed(s) it scores "
            f"{fmt_num(fresh * spec.scale, d)} on average, so its search value was {abs(optimism) * spec.scale:.{d}f} "
            f"({abs(rel):.1f} %) {words}")
    text += (" — what picking the best of many noisy validation numbers does." if optimism > 0 else ".")
    if winner and winner != best.trial:
        w = next((c for c in candidates if c.trial == winner), None)
        if w and w.values():
            text += (f" Trial {winner} has the better mean ({fmt_num(statistics.fmean(w.values()) * spec.scale, d)}) "
                     "and is the configuration the final stage trained.")
    elif winner:
        text += " It keeps the best mean and is the configuration the final stage trained."
    return text


def _finite(v: Any) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False
