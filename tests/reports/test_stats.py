"""reports.stats against hand computations and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from reports import stats


def test_holm_hand_case():
    # sorted: 0.01*3 = 0.03; 0.03*2 = 0.06; 0.04*1 = 0.04 -> max(0.06, 0.04) = 0.06
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_holm_caps_at_one_and_skips_missing():
    adj = stats.holm([0.4, None, 0.3, float("nan"), 0.01])
    # family of 3: 0.01*3 = 0.03; 0.3*2 = 0.6; 0.4*1 = 0.4 -> 0.6
    assert adj[1] is None and adj[3] is None
    assert adj[4] == pytest.approx(0.03) and adj[2] == pytest.approx(0.6) and adj[0] == pytest.approx(0.6)
    assert stats.holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])
    assert stats.holm([]) == []
    assert stats.holm([0.02]) == pytest.approx([0.02])


def test_summarize_is_sample_std():
    s = stats.summarize([1.0, 2.0, 4.0, float("nan")])
    assert s.n == 3 and s.mean == pytest.approx(7 / 3)
    assert s.std == pytest.approx(math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2) / 2))
    one = stats.summarize([0.5])
    assert one.n == 1 and one.mean == 0.5 and math.isnan(one.std)
    assert stats.summarize([]).n == 0


def test_paired_test_matches_scipy_on_matched_seeds():
    ref = {1: 0.80, 2: 0.82, 3: 0.79, 4: 0.81, 5: 0.83}
    var = {1: 0.78, 2: 0.80, 3: 0.79, 4: 0.77, 6: 0.90}  # seed 5 missing, seed 6 unmatched
    r = stats.paired_test(var, ref)
    a, b = np.array([0.78, 0.80, 0.79, 0.77]), np.array([0.80, 0.82, 0.79, 0.81])
    assert r.n_pairs == 4
    assert r.p == pytest.approx(sps.ttest_rel(a, b).pvalue)
    w = stats.paired_test(var, ref, test="wilcoxon")
    assert w.p == pytest.approx(sps.wilcoxon(a, b).pvalue)


def test_paired_test_is_na_not_fake():
    assert stats.paired_test({1: 0.5}, {1: 0.6}).p is None  # one pair
    r = stats.paired_test({1: 0.5, 2: 0.6, 3: 0.7}, {1: 0.5, 2: 0.6, 3: 0.7})
    assert r.p is None and "zero" in r.reason
    r = stats.paired_test({1: 1.5, 2: 2.5, 3: 3.5}, {1: 0.5, 2: 1.5, 3: 2.5})  # constant difference (exact in binary)
    assert r.p is None and "variance" in r.reason


def test_two_pairs_give_no_p_three_do():
    """Two near-equal differences make a t-test 'significant' by accident (1 degree of freedom):
    the project's rule is at least MIN_PAIRS = 3 matched seeds."""
    ref, var = {1: 0.80, 2: 0.82}, {1: 0.90, 2: 0.921}
    assert sps.ttest_rel([0.90, 0.921], [0.80, 0.82]).pvalue < 0.05  # what the rule prevents
    for test in ("ttest", "wilcoxon"):
        r = stats.paired_test(var, ref, test=test)
        assert stats.MIN_PAIRS == 3 and r.n_pairs == 2 and r.p is None
        assert r.reason == "2 matched seed(s); a paired test needs at least 3"
    r = stats.paired_test({**var, 3: 0.905}, {**ref, 3: 0.81})
    assert r.n_pairs == 3 and r.p == pytest.approx(sps.ttest_rel([0.90, 0.921, 0.905], [0.80, 0.82, 0.81]).pvalue)
    with pytest.raises(ValueError, match="ttest"):
        stats.paired_test({}, {}, test="sign")


def test_min_wilcoxon_p():
    assert stats.min_wilcoxon_p(5) == pytest.approx(0.0625)
