"""Table models for reports, and the field's conventions for printing them.

A table is data first (numbers in table units, significance flags, n) and text second: the
renderers (`render_markdown`, `render_latex`, `render_html`) only format what is here, and the
tests check these numbers directly. Table units follow `shared/spec/metrics.md`: accuracies and
F1 × 100, MAE and Corr as logged. Builders take the tidy frames of `reports.runs`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from reports import stats

# --------------------------------------------------------------------------------------------
# conventions


@dataclass(frozen=True)
class MetricSpec:
    key: str  # MLflow suffix: best/test/<key>
    group: str  # header group ("Acc-2"), sub-header ("has0") below
    sub: str
    scale: float  # raw fraction -> table unit
    decimals: int
    higher_is_better: bool

    @property
    def header(self) -> str:
        return f"{self.group} {self.sub}".strip()


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("acc2_has0", "Acc-2", "has0", 100.0, 2, True),
    MetricSpec("acc2_non0", "Acc-2", "non0", 100.0, 2, True),
    MetricSpec("f1_has0", "F1", "has0", 100.0, 2, True),
    MetricSpec("f1_non0", "F1", "non0", 100.0, 2, True),
    MetricSpec("acc7", "Acc-7", "", 100.0, 2, True),
    MetricSpec("mae", "MAE", "", 1.0, 3, False),
    MetricSpec("corr", "Corr", "", 1.0, 3, True),
)
METRIC_BY_KEY: Mapping[str, MetricSpec] = {m.key: m for m in METRICS}
# every metric the trainer logs, for the specs of the ones the tables leave out
_EXTRA = {"acc5": MetricSpec("acc5", "Acc-5", "", 100.0, 2, True)}

TEST_PREFIX = "metrics.best/test/"
VALID_PREFIX = "metrics.best/valid/"
STD_NOTE = "mean ± sample standard deviation (ddof = 1) over seeds; n = number of seeds"
UNITS_NOTE = "Acc and F1 × 100; MAE and Corr as is; ↑ higher is better, ↓ lower is better"
ROBUST_RE = re.compile(r"^metrics\.robust/(?P<corruption>[^/]+)/r(?P<rate>\d+(?:\.\d+)?)/test/(?P<metric>\w+)$")


def metric_spec(key: str) -> MetricSpec:
    if key in METRIC_BY_KEY:
        return METRIC_BY_KEY[key]
    if key in _EXTRA:
        return _EXTRA[key]
    return MetricSpec(key, key, "", 1.0, 3, True)


# --------------------------------------------------------------------------------------------
# models


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    decimals: int
    higher_is_better: bool | None = None
    group: str = ""  # LaTeX/HTML group header ("Acc-2" over "has0" and "non0")
    sub: str = ""
    x: float | None = None  # numeric position (robustness rate), for plots

    @property
    def arrow(self) -> str:
        if self.higher_is_better is None:
            return ""
        return "↑" if self.higher_is_better else "↓"


@dataclass(frozen=True)
class StatCell:
    """One metric of one row, in table units."""

    mean: float
    std: float
    n: int
    delta: float | None = None  # row mean − reference mean (table units)
    p: float | None = None  # raw paired-test p-value
    p_adj: float | None = None  # Holm-adjusted
    n_pairs: int = 0
    significant: bool = False
    reason: str = ""  # why p is n/a


@dataclass(frozen=True)
class StatRow:
    label: str
    cells: Mapping[str, StatCell]
    n: int  # runs (seeds) in the row
    reference: bool = False
    extra: Mapping[str, str] = field(default_factory=dict)  # text columns before the metrics


@dataclass(frozen=True)
class StatTable:
    """Rows × numeric columns of mean ± std; optionally Δ and significance against a reference."""

    id: str
    title: str
    caption: str
    columns: tuple[Column, ...]
    rows: tuple[StatRow, ...]
    row_header: str = "Method"
    extra_headers: tuple[str, ...] = ()
    show_n: bool = True
    show_delta: bool = False
    notes: tuple[str, ...] = ()
    test: str | None = None
    alpha: float | None = None

    def row(self, label: str) -> StatRow:
        for r in self.rows:
            if r.label == label:
                return r
        raise KeyError(f"no row {label!r} in table {self.id}; rows: {[r.label for r in self.rows]}")


@dataclass(frozen=True)
class TextTable:
    """Preformatted cells (best trials, p-values, configs, run counts)."""

    id: str
    title: str
    caption: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()
    numeric: tuple[bool, ...] = ()  # right-align these columns


# --------------------------------------------------------------------------------------------
# formatting shared by the renderers


def fmt_num(x: float | None, decimals: int) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    s = f"{x:.{decimals}f}"
    return "0." + "0" * decimals if s.startswith("-") and float(s) == 0 else s


def fmt_mean_std(cell: StatCell, decimals: int) -> tuple[str, str]:
    """(mean, std) strings; std is 'n/a' for a single seed."""
    return fmt_num(cell.mean, decimals), fmt_num(cell.std, decimals)


def fmt_delta(cell: StatCell, decimals: int) -> str:
    if cell.delta is None or not math.isfinite(cell.delta):
        return "n/a"
    s = fmt_num(cell.delta, decimals)
    return s if s.startswith("-") else "+" + s


def fmt_p(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "n/a"
    return f"{p:.3g}"


def metric_columns(keys: Sequence[str] | None = None) -> tuple[Column, ...]:
    specs = [metric_spec(k) for k in keys] if keys else list(METRICS)
    return tuple(Column(s.key, s.header, s.decimals, s.higher_is_better, s.group, s.sub) for s in specs)


# --------------------------------------------------------------------------------------------
# builders


def _values_by_seed(frame: Any, column: str, scale: float) -> dict[int, float]:
    if column not in frame.columns:
        return {}
    out: dict[int, float] = {}
    for seed, value in zip(frame["seed"], frame[column]):
        if seed is None or (isinstance(seed, float) and math.isnan(seed)):
            continue
        v = float(value) if value is not None else math.nan
        out[int(seed)] = v * scale
    return out


def _values(frame: Any, column: str, scale: float) -> list[float]:
    if column not in frame.columns:
        return []
    return [float(v) * scale for v in frame[column] if v is not None]


def _stat_cell(values: Iterable[float]) -> StatCell:
    s = stats.summarize(list(values))
    return StatCell(s.mean, s.std, s.n)


def results_table(groups: Sequence[tuple[str, Any]], *, id: str, title: str, caption: str,
                  row_header: str = "Method", extra: Mapping[str, Sequence[str]] | None = None,
                  notes: Sequence[str] = (), prefix: str = TEST_PREFIX,
                  metric_keys: Sequence[str] | None = None) -> StatTable:
    """One row per (label, frame of runs): mean ± std over the runs of each metric, n seeds.

    `extra` maps a text column header to one value per group (e.g. the sweep a row comes from).
    """
    columns = metric_columns(metric_keys)
    extra = dict(extra or {})
    rows = []
    for i, (label, frame) in enumerate(groups):
        cells = {c.key: _stat_cell(_values(frame, prefix + c.key, metric_spec(c.key).scale)) for c in columns}
        rows.append(StatRow(label, cells, int(len(frame)), extra={h: v[i] for h, v in extra.items()}))
    return StatTable(id=id, title=title, caption=caption, columns=columns, rows=tuple(rows),
                     row_header=row_header, extra_headers=tuple(extra), notes=tuple(notes))


def ablation_table(variants: Sequence[tuple[str, Any]], *, reference: str | None, id: str, title: str,
                   caption: str, test: str = "ttest", alpha: float = 0.05, notes: Sequence[str] = (),
                   prefix: str = TEST_PREFIX, metric_keys: Sequence[str] | None = None,
                   row_header: str = "Variant", extra: Mapping[str, Sequence[str]] | None = None) -> StatTable:
    """One row per variant (reference first): mean ± std, Δ vs reference, paired test + Holm.

    Runs are paired by seed (only seeds present in both). The Holm family is, per metric, the
    non-reference variants whose p is defined. A cell is significant when Holm-adjusted p ≤ α.
    Without a reference the table has no Δ and no tests.
    """
    columns = metric_columns(metric_keys)
    labels = [label for label, _ in variants]
    frames = dict(variants)
    if reference is not None and reference not in frames:
        raise ValueError(f"reference variant {reference!r} not among {labels}")
    order = ([reference] if reference else []) + [v for v in labels if v != reference]
    cells: dict[str, dict[str, StatCell]] = {v: {} for v in order}
    for col in columns:
        scale = metric_spec(col.key).scale
        key = prefix + col.key
        base = _stat_cell(_values(frames[reference], key, scale)) if reference else None
        ref_seeds = _values_by_seed(frames[reference], key, scale) if reference else {}
        others = [v for v in order if v != reference]
        results = {v: stats.paired_test(_values_by_seed(frames[v], key, scale), ref_seeds, test=test)
                   for v in others} if reference else {}
        adjusted = dict(zip(others, stats.holm([results[v].p for v in others]))) if reference else {}
        if reference:
            cells[reference][col.key] = base
        for v in others:
            c = _stat_cell(_values(frames[v], key, scale))
            if reference:
                r = results[v]
                delta = c.mean - base.mean if math.isfinite(c.mean) and math.isfinite(base.mean) else None
                p_adj = adjusted[v]
                c = StatCell(c.mean, c.std, c.n, delta=delta, p=r.p, p_adj=p_adj, n_pairs=r.n_pairs,
                             significant=p_adj is not None and p_adj <= alpha, reason=r.reason)
            cells[v][col.key] = c
    extra = dict(extra or {})
    extra_of = {label: {h: vals[i] for h, vals in extra.items()} for i, label in enumerate(labels)}
    rows = tuple(StatRow(v, cells[v], int(len(frames[v])), reference=(v == reference), extra=extra_of[v])
                 for v in order)
    return StatTable(id=id, title=title, caption=caption, columns=columns, rows=rows, row_header=row_header,
                     extra_headers=tuple(extra),
                     show_delta=reference is not None, notes=tuple(notes),
                     test=test if reference else None, alpha=alpha if reference else None)


def pvalue_table(table: StatTable) -> TextTable:
    """The paired tests behind an ablation table: pairs, raw p and Holm-adjusted p per metric."""
    headers = [table.row_header] + [f"{c.header}: n pairs / p / p (Holm)" for c in table.columns]
    rows = []
    for row in table.rows:
        if row.reference:
            continue
        cells = [row.label]
        for c in table.columns:
            cell = row.cells[c.key]
            mark = " *" if cell.significant else ""
            cells.append(f"{cell.n_pairs} / {fmt_p(cell.p)} / {fmt_p(cell.p_adj)}{mark}")
        rows.append(tuple(cells))
    reasons = sorted({f"{row.label}, {c.header}: p n/a — {row.cells[c.key].reason}"
                      for row in table.rows for c in table.columns if row.cells[c.key].reason})
    name = stats.TESTS.get(table.test or "", table.test or "")
    what = "methods" if table.row_header == "Method" else "variants"
    caption = (f"{name} against the reference over matched seeds; {stats.CORRECTION} correction across "
               f"{what} per metric; * Holm-adjusted p ≤ α = {table.alpha:g}.")
    return TextTable(id=table.id + "-tests", title=table.title + " — paired tests", caption=caption,
                     headers=tuple(headers), rows=tuple(rows), notes=tuple(reasons),
                     numeric=(False,) + (True,) * len(table.columns))


@dataclass(frozen=True)
class RobustCurve:
    corruption: str
    rates: tuple[float, ...]
    cells: tuple[StatCell, ...]


def robust_metric_columns(columns: Iterable[str]) -> dict[tuple[str, float, str], str]:
    """Map (corruption, rate, metric) -> MLflow column for every `robust/...` metric in a frame."""
    out = {}
    for col in columns:
        m = ROBUST_RE.match(col)
        if m:
            out[(m["corruption"], float(m["rate"]), m["metric"])] = col
    return out


def robustness_table(frame: Any, metric: str, *, id: str, title: str, caption: str,
                     notes: Sequence[str] = ()) -> StatTable | None:
    """Rows = corruption, columns = clean (best/test) then each rate; mean ± std of one metric.

    None when the frame has no robustness metric of that name.
    """
    found = {k: v for k, v in robust_metric_columns(frame.columns).items() if k[2] == metric}
    if not found:
        return None
    spec = metric_spec(metric)
    rates = sorted({rate for _, rate, _ in found})
    columns = [Column("clean", "clean", spec.decimals, spec.higher_is_better, x=None)]
    columns += [Column(f"r{r:.2f}", f"r = {r:.2f}", spec.decimals, spec.higher_is_better, x=r) for r in rates]
    clean = _stat_cell(_values(frame, TEST_PREFIX + metric, spec.scale))
    rows = []
    for corruption in sorted({c for c, _, _ in found}):
        cells = {"clean": clean}
        for r in rates:
            col = found.get((corruption, r, metric))
            cells[f"r{r:.2f}"] = _stat_cell(_values(frame, col, spec.scale)) if col else StatCell(math.nan, math.nan, 0)
        rows.append(StatRow(corruption, cells, int(len(frame))))
    return StatTable(id=id, title=title, caption=caption, columns=tuple(columns), rows=tuple(rows),
                     row_header="Corruption", notes=tuple(notes))


def robust_curves(table: StatTable) -> list[RobustCurve]:
    """Curves for plotting: rate 0 is the clean value unless a rate-0 evaluation was logged."""
    rate_cols = [c for c in table.columns if c.x is not None]
    has_zero = any(c.x == 0 for c in rate_cols)
    curves = []
    for row in table.rows:
        xs, cs = [], []
        if not has_zero:
            xs.append(0.0)
            cs.append(row.cells["clean"])
        for c in rate_cols:
            xs.append(float(c.x))
            cs.append(row.cells[c.key])
        curves.append(RobustCurve(row.label, tuple(xs), tuple(cs)))
    return curves
