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


# --------------------------------------------------------------------------------------------
# missing-modality robustness by the field's protocol (ablations/robustness.py, spec robustness.md)

FIELD_ROBUST_METRICS = ("acc2_non0", "f1_non0", "acc7", "mae", "corr")
TOKENS_RE = re.compile(r"^metrics\.robust/tokens-(?P<mods>[a-z]+)/r(?P<rate>\d+(?:\.\d+)?)/test/(?P<metric>\w+)$")
ABSENT_RE = re.compile(r"^metrics\.robust/absent-(?P<mods>[a-z]+)/test/(?P<metric>\w+)$")
PROTOCOLS = {
    "evaluate": "train once — trained on complete data, selected on complete validation, the best-validation "
                "model tested on masked test copies at every missing rate r",
    "retrain": "retrain per rate — one model per rate and seed, trained, selected and tested on data masked "
               "at r (train, valid and test alike)",
}
ABSENT_LABELS = {"": "complete", "a": "A absent", "v": "V absent", "av": "A+V absent"}


def protocol_text(protocol: str) -> str:
    return f"Protocol: {PROTOCOLS.get(protocol, protocol)}; MMSA masking (keep = U(0,1) > r per token / frame)"


def trapezoid_auc(rates: Sequence[float], values: Sequence[float]) -> float:
    """Area under a curve over the rates, trapezoid rule (EMT-DLFR's ``sum(v[:-1] + v[1:]) / 2 * 0.1``
    for the rates 0.0, 0.1, ..., 1.0). NaN if any value is missing or fewer than two rates."""
    import numpy as np

    r = np.asarray(rates, dtype=float)
    v = np.asarray(values, dtype=float)
    if r.size < 2 or r.shape != v.shape or not np.all(np.isfinite(v)):
        return math.nan
    order = np.argsort(r)
    r, v = r[order], v[order]
    return float(np.sum((v[:-1] + v[1:]) / 2 * np.diff(r)))


@dataclass(frozen=True)
class RobustPoints:
    """Raw metric values of a robustness study, read from its child runs.

    `values[(method, rate, seed)][metric]`; `absent[(method, modalities, seed)][metric]` with
    modalities "" = the complete test split (best/test), "a", "v", "av" (evaluate protocol only).
    """

    protocol: str
    methods: tuple[str, ...]
    rates: tuple[float, ...]
    seeds: tuple[int, ...]
    values: Mapping[tuple[str, float, int], Mapping[str, float]]
    absent: Mapping[tuple[str, str, int], Mapping[str, float]] = field(default_factory=dict)

    def value(self, method: str, rate: float, seed: int, metric: str) -> float:
        return float(self.values.get((method, rate, seed), {}).get(metric, math.nan))

    def seed_auc(self, method: str, seed: int, metric: str) -> float:
        return trapezoid_auc(self.rates, [self.value(method, r, seed, metric) for r in self.rates])


def _finite(v: Any) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def robust_points(frame: Any, protocol: str, order: Sequence[str] = ()) -> RobustPoints:
    """From a tidy frame of FINISHED robustness children (columns method, seed, rate, metrics.*);
    methods in `order` (the study's), then any other alphabetically."""
    values: dict[tuple[str, float, int], dict[str, float]] = {}
    absent: dict[tuple[str, str, int], dict[str, float]] = {}
    tokens = {c: TOKENS_RE.match(c) for c in frame.columns}
    tokens = {c: m for c, m in tokens.items() if m and m["mods"] == "tav"}
    drops = {c: ABSENT_RE.match(c) for c in frame.columns}
    drops = {c: m for c, m in drops.items() if m}
    for _, row in frame.iterrows():
        method, seed = row.get("method"), row.get("seed")
        if method is None or seed is None or (isinstance(seed, float) and math.isnan(seed)):
            continue
        seed = int(seed)
        if protocol == "retrain":
            rate = row.get("rate")
            if not _finite(rate):
                continue
            cell = values.setdefault((method, round(float(rate), 2), seed), {})
            for key in METRIC_BY_KEY:
                v = row.get(TEST_PREFIX + key)
                if _finite(v):
                    cell[key] = float(v)
            continue
        for col, m in tokens.items():
            if _finite(row[col]):
                values.setdefault((method, round(float(m["rate"]), 2), seed), {})[m["metric"]] = float(row[col])
        for col, m in drops.items():
            if _finite(row[col]):
                absent.setdefault((method, m["mods"], seed), {})[m["metric"]] = float(row[col])
        if any(k[0] == method and k[2] == seed for k in absent):
            for key in METRIC_BY_KEY:
                v = row.get(TEST_PREFIX + key)
                if _finite(v):
                    absent.setdefault((method, "", seed), {})[key] = float(v)
    found = {k[0] for k in values}
    methods = tuple([m for m in order if m in found] + sorted(found - set(order)))
    rates = tuple(sorted({k[1] for k in values}))
    seeds = tuple(sorted({k[2] for k in values}))
    return RobustPoints(protocol, methods, rates, seeds, values, absent)


def robust_rate_table(points: RobustPoints, metric: str, *, id: str, title: str, caption: str,
                      notes: Sequence[str] = ()) -> StatTable:
    """Rows = methods, columns = each rate then the AUC over the rates; mean ± std over seeds.

    The AUC is computed per seed (from that seed's whole curve, in table units), then summarised.
    """
    spec = metric_spec(metric)
    columns = [Column(f"r{r:.2f}", f"r = {r:.1f}" if round(r, 1) == r else f"r = {r:.2f}", spec.decimals,
                      spec.higher_is_better, x=r) for r in points.rates]
    columns.append(Column("auc", "AUC", spec.decimals, spec.higher_is_better))
    rows = []
    for method in points.methods:
        cells = {}
        for r in points.rates:
            cells[f"r{r:.2f}"] = _stat_cell(points.value(method, r, s, metric) * spec.scale for s in points.seeds)
        cells["auc"] = _stat_cell(points.seed_auc(method, s, metric) * spec.scale for s in points.seeds)
        n = len({s for (m, _, s) in points.values if m == method})
        rows.append(StatRow(method, cells, n))
    return StatTable(id=id, title=title, caption=caption, columns=tuple(columns), rows=tuple(rows),
                     row_header="Method", notes=tuple(notes))


def robust_auc_table(points: RobustPoints, *, id: str, title: str, caption: str,
                     metrics: Sequence[str] = FIELD_ROBUST_METRICS, notes: Sequence[str] = ()) -> StatTable:
    """Rows = methods, columns = the AUC of each metric's curve (per seed, then mean ± std)."""
    columns = metric_columns(metrics)
    rows = []
    for method in points.methods:
        cells = {m: _stat_cell(points.seed_auc(method, s, m) * metric_spec(m).scale for s in points.seeds)
                 for m in metrics}
        rows.append(StatRow(method, cells, len({s for (mm, _, s) in points.values if mm == method})))
    return StatTable(id=id, title=title, caption=caption, columns=columns, rows=tuple(rows),
                     row_header="Method", notes=tuple(notes))


def robust_absent_table(points: RobustPoints, *, id: str, title: str, caption: str,
                        metrics: Sequence[str] = FIELD_ROBUST_METRICS, notes: Sequence[str] = ()) -> StatTable | None:
    """Whole-modality drop: rows = (method, test data: complete / A / V / A+V absent). None if absent."""
    if not points.absent:
        return None
    columns = metric_columns(metrics)
    seeds = sorted({k[2] for k in points.absent})
    rows = []
    for method in points.methods:
        for mods, label in ABSENT_LABELS.items():
            got = [points.absent.get((method, mods, s)) for s in seeds]
            got = [g for g in got if g]
            if not got:
                continue
            cells = {m: _stat_cell(g.get(m, math.nan) * metric_spec(m).scale for g in got) for m in metrics}
            rows.append(StatRow(method, cells, len(got), extra={"Test data": label}))
    return StatTable(id=id, title=title, caption=caption, columns=columns, rows=tuple(rows),
                     row_header="Method", extra_headers=("Test data",), notes=tuple(notes))
