"""Table models for reports, and the field's conventions for printing them.

A table is data first (numbers in table units, significance flags, n) and text second: the
renderers (`render_markdown`, `render_latex`, `render_html`) only format what is here, and the
tests check these numbers directly. Table units follow the field's convention: accuracies and
F1 × 100, MAE and Corr as logged. Builders take the tidy frames of `reports.runs`; metric names are
built and parsed by `mmsa_core.record_names`, as the trainer writes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from mmsa_core.record_names import ABSENT_KIND, best_metric, parse_robust_metric
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

METRICS_COLUMN = "metrics."  # a tidy frame's metric columns: metrics.<name>
TEST_PREFIX = METRICS_COLUMN + best_metric("test", "")  # metrics.best/test/<m>
VALID_PREFIX = METRICS_COLUMN + best_metric("valid", "")
STD_NOTE = "mean ± sample standard deviation (ddof = 1) over seeds; n = number of seeds"
UNITS_NOTE = "Acc and F1 × 100; MAE and Corr as is; ↑ higher is better, ↓ lower is better"
# The one significance mark of every table and format (LaTeX: $^{\dagger}$); defined once, in the
# report's conventions (`significance_convention`).
SIG_MARK = "†"
DEGENERATE_LABEL = "degenerate"  # appended to a flagged row's label: "(degenerate)"
CORR_FLOOR = 1e-6  # |Corr| below this: the prediction does not vary with the target
ONE_CLASS_TOLERANCE = 1e-6  # F1 = 2a²/(1 + a) to this: one class predicted for every sample
DEGENERATE_RULE = (
    "A row is flagged (degenerate) when, read from each run's best/test metrics, every run predicts without "
    f"signal — |Corr| < {CORR_FLOOR:g} (a constant prediction: the project logs its undefined Pearson r as 0.0), "
    "or weighted F1 non0 = 2a²/(1 + a) with a = Acc-2 non0, to 1e-6 (every non-zero test sample on one side "
    "of 0, so a is the share of one class) — or when, over 2 or more seeds, Acc-7, Acc-2 has0 and Acc-2 non0 "
    "are identical for every seed. When only some runs are so, a note says how many and the row is not flagged.")


def significance_convention(test: str, alpha: float) -> str:
    """The definition of `SIG_MARK`, said once in the report's conventions."""
    return (f"{SIG_MARK} marks a cell that differs significantly from its table's reference row: "
            f"{stats.TESTS[test]} over matched seeds, {stats.CORRECTION} correction across the table's other "
            f"rows per metric, adjusted p ≤ α = {alpha:g}. A paired test needs at least {stats.MIN_PAIRS} "
            f"matched seeds: with fewer, p is n/a and no cell is marked. No other mark is used.")


def tests_caption(table: "StatTable") -> str:
    """The sentence every format appends to the caption of a table with paired tests."""
    return (f"In parentheses: Δ = row mean − reference mean; {SIG_MARK} = significant ({stats.TESTS[table.test]}, "
            f"{stats.CORRECTION}, α = {table.alpha:g}; see conventions). Fewer than {stats.MIN_PAIRS} "
            f"matched seeds: p n/a and no {SIG_MARK}.")


def full_caption(table: "StatTable | TextTable") -> str:
    """A table's caption as every format prints it (with the tests sentence where it has tests)."""
    if isinstance(table, StatTable) and table.test:
        return f"{table.caption} {tests_caption(table)}".strip()
    return table.caption


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
    degenerate: bool = False  # its predictions carry no signal (DEGENERATE_RULE); said in the notes

    @property
    def display_label(self) -> str:
        """The label as every format prints it: "(reference)" / "(degenerate)" appended."""
        marks = (["reference"] if self.reference else []) + ([DEGENERATE_LABEL] if self.degenerate else [])
        return self.label + "".join(f" ({m})" for m in marks)


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
    # the same table as raw values for CSV (numbers as numbers, one quantity per column); empty:
    # the printed cells, each read as a number where it is one
    value_headers: tuple[str, ...] = ()
    values: tuple[tuple[Any, ...], ...] = ()


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


@dataclass(frozen=True)
class Degeneracy:
    """How many of a row's runs predict without signal (`DEGENERATE_RULE`)."""

    n_runs: int
    constant: int  # runs with |Corr| < CORR_FLOOR
    one_class: int  # runs whose F1 non0 is that of a one-class prediction
    either: int  # runs with one or both
    identical: bool  # >= 2 seeds and Acc-7, Acc-2 has0, Acc-2 non0 the same for each
    shares: tuple[float, ...] = ()  # Acc-2 non0 (table units) of the one-class runs
    acc7: float | None = None  # the identical Acc-7 (table units)

    @property
    def flagged(self) -> bool:
        return (self.n_runs > 0 and self.either == self.n_runs) or self.identical

    def note(self, label: str) -> str | None:
        parts = []
        if self.constant:
            parts.append(f"{self.constant} of {self.n_runs} run(s) with |Corr| < {CORR_FLOOR:g} (constant prediction)")
        if self.one_class:
            share = ", ".join(sorted({f"{v:.2f}" for v in self.shares}))
            parts.append(f"{self.one_class} of {self.n_runs} run(s) predicting one class for every non-zero "
                         f"test sample (Acc-2 non0 {share} = that class's share)")
        if self.identical:
            parts.append(f"Acc-7 ({self.acc7:.2f}), Acc-2 has0 and Acc-2 non0 identical for all {self.n_runs} seeds")
        if not parts:
            return None
        what = "degenerate predictions" if self.flagged else "some runs degenerate"
        return f"{label}: {what} — " + "; ".join(parts)


def degeneracy(frame: Any, prefix: str = TEST_PREFIX) -> Degeneracy:
    """Apply `DEGENERATE_RULE` to one row's runs (a tidy frame of best/test metrics)."""
    n = int(len(frame))

    def column(key: str) -> list[float]:
        if prefix + key not in frame.columns:
            return [math.nan] * n
        return [float(v) if v is not None else math.nan for v in frame[prefix + key]]

    corr, acc, f1 = column("corr"), column("acc2_non0"), column("f1_non0")
    constant = [math.isfinite(c) and abs(c) < CORR_FLOOR for c in corr]
    one_class = [math.isfinite(a) and math.isfinite(f) and a < 1 - ONE_CLASS_TOLERANCE
                 and abs(f - 2 * a * a / (1 + a)) <= ONE_CLASS_TOLERANCE for a, f in zip(acc, f1)]
    accuracies = [column(k) for k in ("acc7", "acc2_has0", "acc2_non0")]
    identical = n >= 2 and all(all(math.isfinite(v) for v in vals) and len(set(vals)) == 1 for vals in accuracies)
    scale = metric_spec("acc2_non0").scale
    return Degeneracy(n, sum(constant), sum(one_class), sum(c or o for c, o in zip(constant, one_class)), identical,
                      tuple(a * scale for a, o in zip(acc, one_class) if o),
                      accuracies[0][0] * metric_spec("acc7").scale if identical else None)


def _degenerate_rows(groups: Sequence[tuple[str, Any]], prefix: str) -> tuple[dict[str, bool], list[str]]:
    flags, notes = {}, []
    for label, frame in groups:
        d = degeneracy(frame, prefix)
        flags[label] = d.flagged
        note = d.note(label)
        if note:
            notes.append(note)
    return flags, notes


def results_table(groups: Sequence[tuple[str, Any]], *, id: str, title: str, caption: str,
                  row_header: str = "Method", extra: Mapping[str, Sequence[str]] | None = None,
                  notes: Sequence[str] = (), prefix: str = TEST_PREFIX,
                  metric_keys: Sequence[str] | None = None) -> StatTable:
    """One row per (label, frame of runs): mean ± std over the runs of each metric, n seeds.

    `extra` maps a text column header to one value per group (e.g. the sweep a row comes from).
    """
    columns = metric_columns(metric_keys)
    extra = dict(extra or {})
    flags, flag_notes = _degenerate_rows(groups, prefix)
    rows = []
    for i, (label, frame) in enumerate(groups):
        cells = {c.key: _stat_cell(_values(frame, prefix + c.key, metric_spec(c.key).scale)) for c in columns}
        rows.append(StatRow(label, cells, int(len(frame)), extra={h: v[i] for h, v in extra.items()},
                            degenerate=flags[label]))
    return StatTable(id=id, title=title, caption=caption, columns=columns, rows=tuple(rows),
                     row_header=row_header, extra_headers=tuple(extra), notes=tuple(notes) + tuple(flag_notes))


def ablation_table(variants: Sequence[tuple[str, Any]], *, reference: str | None, id: str, title: str,
                   caption: str, test: str = "ttest", alpha: float = 0.05, notes: Sequence[str] = (),
                   prefix: str = TEST_PREFIX, metric_keys: Sequence[str] | None = None,
                   row_header: str = "Variant", extra: Mapping[str, Sequence[str]] | None = None) -> StatTable:
    """One row per variant (reference first): mean ± std, Δ vs reference, paired test + Holm.

    Runs are paired by seed (only seeds present in both); fewer than `stats.MIN_PAIRS` pairs give
    no p. The Holm family is, per metric, the non-reference variants whose p is defined. A cell is
    significant when Holm-adjusted p ≤ α. Without a reference the table has no Δ and no tests.
    Rows whose predictions carry no signal are flagged (`DEGENERATE_RULE`, said in the notes).
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
    flags, flag_notes = _degenerate_rows([(v, frames[v]) for v in order], prefix)
    rows = tuple(StatRow(v, cells[v], int(len(frames[v])), reference=(v == reference), extra=extra_of[v],
                         degenerate=flags[v]) for v in order)
    return StatTable(id=id, title=title, caption=caption, columns=columns, rows=rows, row_header=row_header,
                     extra_headers=tuple(extra),
                     show_delta=reference is not None, notes=tuple(notes) + tuple(flag_notes),
                     test=test if reference else None, alpha=alpha if reference else None)


def pvalue_table(table: StatTable) -> TextTable:
    """The paired tests behind an ablation table: pairs, raw p and Holm-adjusted p per metric."""
    headers = [table.row_header] + [f"{c.header}: n pairs / p / p (Holm)" for c in table.columns]
    value_headers = [table.row_header] + [f"{c.key}_{q}" for c in table.columns
                                          for q in ("n_pairs", "p", "p_holm", "significant")]
    rows, values = [], []
    for row in table.rows:
        if row.reference:
            continue
        cells, raw = [row.label], [row.label]
        for c in table.columns:
            cell = row.cells[c.key]
            mark = f" {SIG_MARK}" if cell.significant else ""
            cells.append(f"{cell.n_pairs} / {fmt_p(cell.p)} / {fmt_p(cell.p_adj)}{mark}")
            raw += [cell.n_pairs, cell.p, cell.p_adj, cell.significant]
        rows.append(tuple(cells))
        values.append(tuple(raw))
    reasons = sorted({f"{row.label}, {c.header}: p n/a — {row.cells[c.key].reason}"
                      for row in table.rows for c in table.columns if row.cells[c.key].reason})
    name = stats.TESTS.get(table.test or "", table.test or "")
    what = "methods" if table.row_header == "Method" else "variants"
    caption = (f"{name} against the reference over matched seeds (at least {stats.MIN_PAIRS}, else p n/a); "
               f"{stats.CORRECTION} correction across {what} per metric; {SIG_MARK} Holm-adjusted p ≤ α = "
               f"{table.alpha:g}.")
    return TextTable(id=table.id + "-tests", title=table.title + " — paired tests", caption=caption,
                     headers=tuple(headers), rows=tuple(rows), notes=tuple(reasons),
                     numeric=(False,) + (True,) * len(table.columns),
                     value_headers=tuple(value_headers), values=tuple(values))


@dataclass(frozen=True)
class RobustCurve:
    corruption: str
    rates: tuple[float, ...]
    cells: tuple[StatCell, ...]


def robust_metric_columns(columns: Iterable[str]) -> dict[tuple[str, float, str], str]:
    """Map (corruption, rate, metric) -> MLflow column for every rated `robust/...` metric in a frame
    (whole streams absent have no rate and are not a curve's point)."""
    out = {}
    for col in columns:
        key = parse_robust_metric(col) if col.startswith(METRICS_COLUMN) else None
        if key is not None and key.rate is not None:
            out[(key.setting, key.rate, key.metric)] = col
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
# missing-modality robustness by the field's protocol (ablations/robustness.py, docs/METRICS.md)

FIELD_ROBUST_METRICS = ("acc2_non0", "f1_non0", "acc7", "mae", "corr")
FIELD_MASKING = ("tokens", "tav")  # the field's protocol: tokens and frames of every modality masked
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
    parsed = {c: parse_robust_metric(c) for c in frame.columns if c.startswith(METRICS_COLUMN)}
    tokens = {c: k for c, k in parsed.items() if k is not None and (k.kind, k.modalities) == FIELD_MASKING}
    drops = {c: k for c, k in parsed.items() if k is not None and k.kind == ABSENT_KIND}
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
        for col, k in tokens.items():
            if _finite(row[col]):
                values.setdefault((method, round(k.rate, 2), seed), {})[k.metric] = float(row[col])
        for col, k in drops.items():
            if _finite(row[col]):
                absent.setdefault((method, k.modalities, seed), {})[k.metric] = float(row[col])
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
