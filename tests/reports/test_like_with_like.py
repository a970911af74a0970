"""The method table compares like with like, marks significance only on 3+ matched seeds, flags
predictions without signal, and attaches the report to every parent it takes rows from.

`issue_store` is the issue's store: the newest l1 runs come from a 2-epoch robustness smoke on a cut
file, hscl and l1 also have 6-epoch sweeps on 2 seeds. `mosi_store` has all seven methods in one
comparison (selfmm predicting a constant) next to a smoke sweep and a robustness smoke.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from reports.tables import DEGENERATE_RULE, METRICS, SIG_MARK, StatTable, degeneracy, full_caption
from tests.reports._helpers import md_tables, parse_mean_std
from tests.reports.conftest import (COMPARE_SEEDS, CONSTANT_SHARES, DEGENERATE_METHOD, ISSUE_SWEEP_SEEDS,
                                    MOSI_EXPERIMENT, SEVEN_METHODS)

SCALE = {m.key: m.scale for m in METRICS}


def _table(report, id) -> StatTable:
    found = [t for t in report.tables() if t.id == id]
    assert found, f"no table {id}; tables: {[t.id for t in report.tables()]}"
    return found[0]


@pytest.fixture(scope="module")
def issue_report(issue_store, tmp_path_factory):
    from reports.build import build_report

    return build_report(tracking_uri=issue_store.uri, experiment=MOSI_EXPERIMENT, methods=True,
                        out_dir=tmp_path_factory.mktemp("issue-report"))


def test_budgets_get_separate_tables_naming_what_differs(issue_report):
    report = issue_report.report
    first, second = _table(report, "methods"), _table(report, "methods-2")
    assert [(r.label, r.extra["Source"]) for r in first.rows] == [("hscl", "hscl-mosi"), ("l1", "l1-mosi")]
    assert [(r.label, r.extra["Source"]) for r in second.rows] == [("l1", "robust-smoke"), ("mmckd", "robust-smoke")]
    # no hscl with the smoke budget: no Δ and no test in that table, and none across the tables
    assert second.test is None and not second.show_delta
    assert all(c.delta is None and c.p is None for r in second.rows for c in r.cells.values())
    assert not [t for t in report.tables() if t.id == "methods-2-tests"]
    section = next(s for s in report.sections if s.id == "methods")
    texts = [b.text for b in section.blocks if hasattr(b, "text")]
    assert ("Table for budget 2 — not comparable with budget 1: splits (train/valid/test) 128/64/64 (cut) vs whole "
            "file (sizes not recorded); text encoder tiny vs minilm; max_epochs 2 vs 6; seeds 111, 1111, 11111 vs "
            "1111, 1112. No Δ across budgets.") in texts
    assert any(t.startswith("These runs have 2 different budgets.") for t in texts)
    assert report.banners == [
        "SMOKE RUN — the method comparison, budget 2: tiny random text encoder, 2 epochs, splits cut to 128/64/64 "
        "(train/valid/test; the file's own sizes are not in this MLflow experiment), 3 seeds: not a result."]
    md = md_tables(issue_report.files["md"].read_text())
    assert [r["Method"] for r in md["Method comparison — budget 2"]] == ["l1", "mmckd"]


def test_two_matched_seeds_give_no_mark_and_no_p(issue_report, issue_store):
    table = _table(issue_report.report, "methods")
    l1 = table.row("l1")
    old_rule_marks = 0
    for m in METRICS:
        ref, var = issue_store.column("hscl-mosi", "hscl", m.key), issue_store.column("l1-mosi", "l1", m.key)
        seeds = sorted(ref)
        assert seeds == list(ISSUE_SWEEP_SEEDS)
        p = sps.ttest_rel([var[s] * m.scale for s in seeds], [ref[s] * m.scale for s in seeds]).pvalue
        old_rule_marks += p <= 0.05  # what a t-test over 2 pairs says
        cell = l1.cells[m.key]
        assert cell.n_pairs == 2 and cell.p is None and cell.p_adj is None and not cell.significant
        assert cell.reason == "2 matched seed(s); a paired test needs at least 3"
        assert cell.delta == pytest.approx(np.mean([var[s] - ref[s] for s in seeds]) * m.scale)
    assert old_rule_marks >= 1, "the store should make a 2-pair t-test look significant"
    printed = {r["Method"]: r for r in md_tables(issue_report.files["md"].read_text())["Method comparison"]}
    for m in METRICS:
        assert not parse_mean_std(printed["l1"][f"{m.header} {'↑' if m.higher_is_better else '↓'}"])["sig"]
    tests = md_tables(issue_report.files["md"].read_text())["Method comparison — paired tests"]
    assert {v for k, v in tests[0].items() if k != "Method"} == {"2 / n/a / n/a"}
    # the rule is in the caption of every format
    assert full_caption(table).endswith(f"Fewer than 3 matched seeds: p n/a and no {SIG_MARK}.")
    for fmt in ("md", "html"):
        assert "Fewer than 3 matched seeds: p n/a and no †." in issue_report.files[fmt].read_text()


def test_report_attached_to_every_parent_it_takes_rows_from(issue_report, issue_store):
    from mlflow import MlflowClient

    client = MlflowClient(issue_store.uri)
    assert set(issue_report.logged_to) == {issue_store.parents[n] for n in ("hscl-mosi", "l1-mosi", "robust-smoke")}
    for run_id in issue_report.logged_to:
        assert {"report.md", "report.tex", "report.html"} <= {f.path.split("/")[-1]
                                                              for f in client.list_artifacts(run_id, "report")}


def test_seven_methods_from_the_comparable_comparison(mosi_methods, mosi_store):
    table = _table(mosi_methods.report, "methods")
    assert [r.label for r in table.rows] == ["hscl", *sorted(m for m in SEVEN_METHODS if m != "hscl")]
    assert {r.extra["Source"] for r in table.rows} == {"compare-mosi"} and table.rows[0].reference
    for m in METRICS:  # l1 from the 6-epoch comparison, never from the newer 2-epoch robustness smoke
        want = np.array(list(mosi_store.column("compare-mosi", "l1", m.key).values())) * m.scale
        assert table.row("l1").cells[m.key].mean == pytest.approx(want.mean(), rel=1e-12)
        assert table.row("l1").cells[m.key].n_pairs == len(COMPARE_SEEDS)
    assert [t.id for t in mosi_methods.report.tables()] == ["methods-budget", "methods", "methods-tests"]
    text = mosi_methods.files["md"].read_text()
    assert ("2 other source(s) not shown: robust-l1-smoke (robustness, l1) — budget differs from table 1: splits "
            "(train/valid/test) 128/64/64 (cut) vs 1284/229/686 (whole file); text encoder tiny vs minilm; "
            "max_epochs 2 vs 6; seeds 111, 1111, 11111 vs 1111, 1112, 1113 · hscl-mosi-smoke (sweep, hscl) — "
            "budget differs from table 1") in text
    assert mosi_methods.report.banners == []  # the table's own budget is a full one


def test_report_attached_to_the_comparison_parent(mosi_methods, mosi_store):
    from mlflow import MlflowClient

    client = MlflowClient(mosi_store.uri)
    assert mosi_methods.logged_to == [mosi_store.parents["compare-mosi"]]
    names = {f.path for f in client.list_artifacts(mosi_store.parents["compare-mosi"], "report")}
    assert {"report/report.md", "report/report.tex", "report/report.html", "report/csv"} <= names
    csvs = {f.path for f in client.list_artifacts(mosi_store.parents["compare-mosi"], "report/csv")}
    assert csvs == {f"report/csv/{t.id}.csv" for t in mosi_methods.report.tables()}
    for shadowed in ("hscl-mosi-smoke", "robust-l1-smoke"):  # sources the report does not show
        assert not client.list_artifacts(mosi_store.parents[shadowed], "report")
    assert "Comparison parent run" in mosi_methods.files["md"].read_text()


def test_constant_predictions_are_flagged(mosi_methods, mosi_store):
    table = _table(mosi_methods.report, "methods")
    assert [r.label for r in table.rows if r.degenerate] == [DEGENERATE_METHOD]
    share = 100 * CONSTANT_SHARES["acc2_non0"]
    note = (f"{DEGENERATE_METHOD}: degenerate predictions — 3 of 3 run(s) with |Corr| < 1e-06 (constant prediction); "
            f"3 of 3 run(s) predicting one class for every non-zero test sample (Acc-2 non0 {share:.2f} = that class's "
            f"share); Acc-7 ({100 * CONSTANT_SHARES['acc7']:.2f}), Acc-2 has0 and Acc-2 non0 identical for all 3 seeds")
    assert note in table.notes
    md = mosi_methods.files["md"].read_text()
    assert f"| {DEGENERATE_METHOD} (degenerate) | compare-mosi | 3 |" in md and DEGENERATE_RULE in md
    assert "selfmm (degenerate)" in mosi_methods.files["html"].read_text()


def _runs(**columns) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    frame = pd.DataFrame({f"metrics.best/test/{k}": v for k, v in columns.items()})
    frame["seed"] = pd.array(range(1, n + 1), dtype="Int64")
    return frame


def test_degeneracy_rule():
    a = 0.6
    one_class_f1 = 2 * a * a / (1 + a)
    healthy = degeneracy(_runs(corr=[0.61, 0.64], acc2_non0=[0.78, 0.80], f1_non0=[0.77, 0.79], acc7=[0.35, 0.37],
                               acc2_has0=[0.76, 0.79]))
    assert not healthy.flagged and healthy.note("m") is None
    constant = degeneracy(_runs(corr=[0.0, 5e-7], acc2_non0=[0.7, 0.72], f1_non0=[0.7, 0.71], acc7=[0.3, 0.31],
                                acc2_has0=[0.7, 0.72]))
    assert constant.flagged and constant.constant == 2 and constant.one_class == 0 and not constant.identical
    one_class = degeneracy(_runs(corr=[0.12, 0.2], acc2_non0=[a, 0.7], f1_non0=[one_class_f1, 0.69],
                                 acc7=[0.2, 0.3], acc2_has0=[0.58, 0.7]))
    assert not one_class.flagged and one_class.one_class == 1  # one of two runs: a note, no flag
    assert one_class.note("m") == ("m: some runs degenerate — 1 of 2 run(s) predicting one class for every non-zero "
                                   "test sample (Acc-2 non0 60.00 = that class's share)")
    same = degeneracy(_runs(corr=[0.3, 0.31], acc2_non0=[0.5, 0.5], f1_non0=[0.45, 0.47], acc7=[0.1667, 0.1667],
                            acc2_has0=[0.52, 0.52]))
    assert same.flagged and same.identical and same.acc7 == pytest.approx(16.67)
    perfect = degeneracy(_runs(corr=[0.99], acc2_non0=[1.0], f1_non0=[1.0], acc7=[0.9], acc2_has0=[1.0]))
    assert not perfect.flagged and perfect.one_class == 0  # F1 = 2a²/(1+a) holds at a = 1 for any perfect run
    assert not degeneracy(_runs(mae=[0.8, 0.9])).flagged  # no Corr or accuracy logged: nothing to say
