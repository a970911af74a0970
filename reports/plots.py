"""Matplotlib figures (Agg, no pyplot state): history, importances, ablation bars, robustness.

Each function writes one PNG and returns its path. Figures are small (≈ 600×350 px at 100 dpi)
so the self-contained HTML page stays light.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

from reports.sweep_summary import HistoryPoint
from reports.tables import StatTable, metric_spec, robust_curves

DPI = 100


def _figure(width: float = 6.4, height: float = 3.6):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def history(points: Sequence[HistoryPoint], path: Path, *, objective: str, minimize: bool) -> Path:
    fig = _figure()
    ax = fig.subplots()
    full = [p for p in points if p.full_fidelity]
    part = [p for p in points if not p.full_fidelity]
    ax.scatter([p.order for p in full], [p.value for p in full], s=22, color="C0", label="full-fidelity trial")
    ax.scatter([p.order for p in part], [p.value for p in part], s=22, facecolors="none", edgecolors="C1",
               label="stopped early (lower fidelity)")
    ax.step([p.order for p in points], [p.best_so_far for p in points], where="post", color="C3",
            label="best so far")
    ax.set_xlabel("trial (by start time)")
    ax.set_ylabel(f"{objective} ({'lower' if minimize else 'higher'} is better)")
    ax.set_title("Optimisation history (validation objective)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, format="png")
    return path


def importances(values: Mapping[str, float], path: Path, *, evaluator: str, n_trials: int) -> Path:
    names = list(values)[::-1]  # most important on top
    fig = _figure(height=max(2.2, 0.45 * len(names) + 1.2))
    ax = fig.subplots()
    ax.barh(names, [values[n] for n in names], color="C0")
    ax.set_xlabel("importance (sums to 1)")
    ax.set_title(f"{evaluator.split(' (')[0]} importances, {n_trials} full-fidelity trials", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.savefig(path, format="png")
    return path


def ablation_bars(table: StatTable, path: Path, *, metrics: Sequence[str] = ("mae", "acc2_non0")) -> Path:
    """Mean ± std per variant as points with error bars (no bars: the axis does not start at 0),
    a dashed line at the reference mean; significant variants in red."""
    cols = [c for c in table.columns if c.key in metrics]
    fig = _figure(width=3.3 * len(cols) + 0.6, height=max(2.6, 0.4 * len(table.rows) + 1.4))
    axes = fig.subplots(1, len(cols), squeeze=False)[0]
    rows = list(table.rows)[::-1]
    ys = list(range(len(rows)))
    for ax, col in zip(axes, cols):
        for y, r in zip(ys, rows):
            c = r.cells[col.key]
            color = "C2" if r.reference else ("C3" if c.significant else "C0")
            ax.errorbar([c.mean], [y], xerr=[[0 if math.isnan(c.std) else c.std]], fmt="o", color=color, capsize=3)
            if r.reference and not math.isnan(c.mean):
                ax.axvline(c.mean, color="C2", ls="--", lw=0.8)
        ax.set_yticks(ys, [r.label + (" (ref)" if r.reference else "") for r in rows])
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.set_title(f"{col.header} {col.arrow}", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        if ax is not axes[0]:
            ax.tick_params(labelleft=False)
    fig.suptitle("Ablation: mean ± std over seeds (green = reference, red = significant)", fontsize=9)
    fig.savefig(path, format="png")
    return path


def robustness(tables: Sequence[StatTable], metrics: Sequence[str], path: Path) -> Path:
    fig = _figure(width=3.4 * len(tables) + 0.4)
    axes = fig.subplots(1, len(tables), squeeze=False)[0]
    for ax, table, metric in zip(axes, tables, metrics):
        spec = metric_spec(metric)
        for i, curve in enumerate(robust_curves(table)):
            ax.errorbar(curve.rates, [c.mean for c in curve.cells],
                        yerr=[0 if math.isnan(c.std) else c.std for c in curve.cells],
                        marker="o", ms=4, capsize=3, color=f"C{i}", label=curve.corruption)
        ax.set_xlabel("missing rate")
        ax.set_ylabel(f"test {spec.header} {'↑' if spec.higher_is_better else '↓'}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Robustness to missing modalities (reference variant, mean ± std over seeds)", fontsize=9)
    fig.savefig(path, format="png")
    return path


def robustness_methods(tables: Sequence[StatTable], metrics: Sequence[str], path: Path, *, protocol: str) -> Path:
    """The field's robustness curves: one line per method (mean over seeds) with a ± std band,
    one panel per metric; x = missing rate r (the tables' rate columns)."""
    fig = _figure(width=3.1 * len(tables) + 0.4, height=3.2)
    axes = fig.subplots(1, len(tables), squeeze=False)[0]
    for ax, table, metric in zip(axes, tables, metrics):
        spec = metric_spec(metric)
        cols = [c for c in table.columns if c.x is not None]
        xs = [float(c.x) for c in cols]
        for i, row in enumerate(table.rows):
            mean = [row.cells[c.key].mean for c in cols]
            std = [0.0 if math.isnan(row.cells[c.key].std) else row.cells[c.key].std for c in cols]
            ax.plot(xs, mean, marker="o", ms=3, color=f"C{i}", label=row.label)
            ax.fill_between(xs, [m - s for m, s in zip(mean, std)], [m + s for m, s in zip(mean, std)],
                            color=f"C{i}", alpha=0.2, lw=0)
        ax.set_xlabel("missing rate r")
        ax.set_ylabel(f"test {spec.header} {'↑' if spec.higher_is_better else '↓'}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"Robustness to missing modalities — {protocol} protocol (mean ± std over seeds)", fontsize=9)
    fig.savefig(path, format="png")
    return path
