"""The re-rank table rebuilt from runs: per-seed values, mean ± std over the full-length search run and
the new seeds, the optimism (checked by hand), the winner marked, and the optimism in words."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from reports.rerank import summarize_rerank

COL = "metrics.best/valid/mae"


def _search() -> pd.DataFrame:
    # t1 ran to full length (its value counts in the mean); t2 was stopped by ASHA (it does not)
    return pd.DataFrame({"trial_id": ["t1", "t2", "t3"], COL: [0.80, 0.82, 0.95],
                         "stop_reason": ["max_epochs", "scheduler", "max_epochs"],
                         "stopped_early": [False, True, False], "metrics.epochs_run": [8.0, 2.0, 8.0],
                         "params.max_epochs": [8, 8, 8]})


def _rerank() -> pd.DataFrame:
    return pd.DataFrame({"source_trial_id": ["t1", "t1", "t2", "t2"], "seed": [2111, 2112, 2111, 2112],
                         COL: [0.88, 0.90, 0.84, 0.85]})


def test_table_values_optimism_and_winner_by_hand():
    s = summarize_rerank(_rerank(), _search(), objective="mae", minimize=True, winner="t2", search_best="t1", id="x")
    rows = {v[0]: v for v in s.table.values}
    # t1: mean over its search run and the two new seeds; t2: the new seeds only (stopped early)
    t1_mean = (0.80 + 0.88 + 0.90) / 3
    t1_std = math.sqrt(sum((v - t1_mean) ** 2 for v in (0.80, 0.88, 0.90)) / 2)
    assert rows["t1"][4] == pytest.approx(t1_mean) and rows["t1"][5] == pytest.approx(t1_std) and rows["t1"][6] == 3
    assert rows["t2"][4] == pytest.approx(0.845) and rows["t2"][6] == 2
    assert rows["t1"][7] == pytest.approx(0.89 - 0.80)  # optimism: new seeds' mean − search value
    assert rows["t2"][7] == pytest.approx(0.845 - 0.82)
    assert [v[0] for v in s.table.values] == ["t2", "t1"]  # best mean first
    assert rows["t2"][-1] is True and rows["t1"][-1] is False
    assert s.optimism == pytest.approx(0.09)
    assert "(stopped early)" in s.table.rows[0][1]
    assert "0.0900 (11.2 %) optimistic" in s.text and "Trial t2 has the better mean" in s.text


def test_higher_is_better_objectives_flip_the_sign():
    rerank = _rerank().rename(columns={COL: "metrics.best/valid/corr"})
    search = _search().rename(columns={COL: "metrics.best/valid/corr"})
    s = summarize_rerank(rerank, search, objective="corr", minimize=False, winner="t1", search_best="t1", id="x")
    assert s.optimism == pytest.approx(-(0.89 - 0.80))  # re-ranked higher than searched: pessimistic
    assert "pessimistic" in s.text and "keeps the best mean" in s.text


def test_no_rerank_runs_no_table():
    assert summarize_rerank(pd.DataFrame(), _search(), objective="mae", minimize=True, winner=None,
                            search_best=None, id="x") is None
