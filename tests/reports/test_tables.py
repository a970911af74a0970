"""Table builders on hand-made frames: n/a p-values, Holm family, no reference, rendering of n/a."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from reports import render_markdown
from reports.tables import ablation_table, fmt_delta, fmt_num, pvalue_table, robust_curves, robustness_table


def _runs(values: dict[int, float], metric: str = "mae") -> pd.DataFrame:
    return pd.DataFrame({"seed": pd.array(list(values), dtype="Int64"),
                         f"metrics.best/test/{metric}": list(values.values())})


def test_single_pair_is_na_and_outside_the_holm_family():
    ref = _runs({1: 0.80, 2: 0.82, 3: 0.81})
    a = _runs({1: 0.90, 2: 0.93, 3: 0.91})
    b = _runs({3: 0.70, 9: 0.71})  # one matched seed
    t = ablation_table([("ref", ref), ("a", a), ("b", b)], reference="ref", id="t", title="T", caption="",
                       metric_keys=["mae"])
    cb = t.row("b").cells["mae"]
    assert cb.n_pairs == 1 and cb.p is None and cb.p_adj is None and not cb.significant and "1 matched" in cb.reason
    ca = t.row("a").cells["mae"]
    from scipy import stats as sps

    p = sps.ttest_rel([0.90, 0.93, 0.91], [0.80, 0.82, 0.81]).pvalue
    assert ca.p == pytest.approx(p) and ca.p_adj == pytest.approx(p)  # family of one
    assert cb.delta == pytest.approx(0.705 - 0.81)
    tests = pvalue_table(t)
    assert tests.rows[1][1] == "1 / n/a / n/a" and any("b, MAE: p n/a" in n for n in tests.notes)
    md = "\n".join(render_markdown.stat_table(t))
    assert "0.705 ± 0.007 (Δ -0.105)" in md


def test_no_reference_no_delta_no_test():
    t = ablation_table([("x", _runs({1: 0.8, 2: 0.9})), ("y", _runs({1: 0.7}))], reference=None, id="t",
                       title="T", caption="", metric_keys=["mae"])
    assert not t.show_delta and t.test is None
    assert all(c.delta is None and c.p is None for r in t.rows for c in r.cells.values())
    md = "\n".join(render_markdown.stat_table(t))
    assert "Δ" not in md and "0.700 ± n/a" in md
    with pytest.raises(ValueError, match="not among"):
        ablation_table([("x", _runs({1: 0.8}))], reference="z", id="t", title="T", caption="")


def test_accuracies_are_scaled_by_100():
    t = ablation_table([("r", _runs({1: 0.80, 2: 0.84}, "acc2_non0"))], reference="r", id="t", title="T",
                       caption="", metric_keys=["acc2_non0"])
    c = t.row("r").cells["acc2_non0"]
    assert c.mean == pytest.approx(82.0) and c.std == pytest.approx(math.sqrt(8.0))


def test_formatting():
    assert fmt_num(float("nan"), 2) == "n/a" and fmt_num(-0.0004, 3) == "0.000" and fmt_num(1.005, 1) == "1.0"
    from reports.tables import StatCell

    assert fmt_delta(StatCell(0, 0, 1, delta=0.5), 2) == "+0.50"
    assert fmt_delta(StatCell(0, 0, 1, delta=-0.5), 2) == "-0.50"


def test_robustness_curve_starts_at_clean_value():
    f = pd.DataFrame({"seed": pd.array([1, 2], dtype="Int64"), "metrics.best/test/mae": [0.8, 0.9],
                      "metrics.robust/frames-av/r0.50/test/mae": [1.0, 1.2],
                      "metrics.robust/frames-av/r0.50/test/corr": [0.1, 0.2]})
    t = robustness_table(f, "mae", id="r", title="R", caption="")
    assert [c.key for c in t.columns] == ["clean", "r0.50"]
    (curve,) = robust_curves(t)
    assert curve.rates == (0.0, 0.5) and [c.mean for c in curve.cells] == pytest.approx([0.85, 1.1])
    assert robustness_table(f, "acc7", id="r", title="R", caption="") is None
