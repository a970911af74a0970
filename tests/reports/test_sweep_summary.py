"""reports.sweep_summary on small hand-made frames (no MLflow)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from reports.sweep_summary import full_fidelity_mask, parse_search_space, summarize_sweep


def _frame(n: int, *, full: int) -> pd.DataFrame:
    rows = []
    for i in range(n):
        done = i < full
        rows.append({"run_id": f"{i:032x}", "run_name": f"r{i}", "trial_id": f"t{i}",
                     "start_time": pd.Timestamp(1_700_000_000 + i, unit="s", tz="UTC"),
                     "stopped_early": not done, "stop_reason": None,
                     "metrics.best/valid/mae": 1.0 - 0.01 * i + (0.1 if i % 3 == 0 else 0.0),
                     "metrics.best/valid/corr": 0.5, "metrics.epochs_run": 10.0 if done else 3.0,
                     "params.max_epochs": 10, "params.lr": 10 ** -(1 + i % 4), "params.depth": 1 + i % 3,
                     "params.act": ["relu", "gelu"][i % 2], "params.seed": 100 + i})
    f = pd.DataFrame(rows)
    f["stopped_early"] = f["stopped_early"].astype("boolean")
    return f


def test_too_few_full_fidelity_trials_says_so():
    s = summarize_sweep(_frame(6, full=2))
    assert s.importances.values == {} and "only 2 full-fidelity" in s.importances.message
    assert s.compute.n_trials == 6 and s.compute.budget == 60 and s.compute.epochs_run == 2 * 10 + 4 * 3
    assert s.compute.saved_fraction == pytest.approx(1 - 32 / 60)


def test_fanova_and_inferred_space():
    s = summarize_sweep(_frame(10, full=8), evaluator="fanova")
    assert s.searched == ("act", "depth", "lr")  # seed varies too but is never a hyperparameter
    assert "fANOVA" in s.importances.evaluator and s.importances.n_trials == 8
    assert set(s.importances.values) == {"act", "depth", "lr"}
    assert sum(s.importances.values.values()) == pytest.approx(1.0)
    assert [p.order for p in s.history] == list(range(1, 11))
    best = [p.best_so_far for p in s.history]
    assert all(b2 <= b1 for b1, b2 in zip(best, best[1:]))
    assert best[-1] == min(p.value for p in s.history)


def test_objective_from_search_space_maximises():
    f = _frame(5, full=5)
    f["metrics.best/valid/corr"] = [0.1, 0.5, 0.3, 0.2, 0.4]
    space = parse_search_space({"params": [{"name": "lr", "low": 1e-5, "high": 1.0, "log": True}],
                                "metric": "best/valid/corr", "mode": "max"})
    s = summarize_sweep(f, space=space)
    assert s.objective == "best/valid/corr" and not s.minimize and s.searched == ("lr",)
    assert [r[1] for r in s.best_trials.rows] == ["t1", "t4", "t2", "t3", "t0"]


def test_full_fidelity_rule():
    f = pd.DataFrame({"metrics.epochs_run": [20, 7, 7, 7, 20, math.nan], "params.max_epochs": [20] * 6,
                      "stopped_early": pd.array([True, False, True, True, None, None], dtype="boolean"),
                      "stop_reason": [None, None, None, "patience", "scheduler", None]})
    assert full_fidelity_mask(f) == [True, True, False, True, False, False]


def test_parse_search_space_formats():
    assert parse_search_space([1, 2]) is None
    assert parse_search_space({"b": {}, "a": {}}).names == ("a", "b")
    s = parse_search_space({"params": [{"name": "tau", "low": 0.05, "high": 1, "log": True}], "mode": "sideways"})
    assert s.names == ("tau",) and s.ranges == {"tau": (0.05, 1.0, True)} and s.mode is None


def test_declared_int_and_categorical_parameters_keep_their_distributions(monkeypatch):
    """search_space.json's int and categorical kinds (sweeps/ writes them for class rules, K, widths)
    become Optuna Int/Categorical distributions, with every declared choice, not a float range."""
    import optuna

    seen = {}
    real = optuna.importance.get_param_importances

    def spy(study, **kw):
        seen.update(study.trials[0].distributions)
        return real(study, **kw)

    monkeypatch.setattr(optuna.importance, "get_param_importances", spy)
    space = parse_search_space({"params": [
        {"name": "lr", "low": 1e-5, "high": 1.0, "log": True, "distribution": "log-uniform"},
        {"name": "depth", "low": 1, "high": 5, "log": False, "kind": "int", "distribution": "int-uniform"},
        {"name": "act", "kind": "categorical", "choices": ["relu", "gelu", "tanh"], "distribution": "categorical"}],
        "metric": "best/valid/mae", "mode": "min"})
    assert space.kinds == {"lr": "float", "depth": "int", "act": "categorical"}
    assert space.choices == {"act": ("relu", "gelu", "tanh")} and "act" not in space.ranges
    s = summarize_sweep(_frame(10, full=8), space=space)
    assert set(s.importances.values) == {"act", "depth", "lr"}
    assert isinstance(seen["depth"], optuna.distributions.IntDistribution)
    assert (seen["depth"].low, seen["depth"].high) == (1, 5)
    assert isinstance(seen["act"], optuna.distributions.CategoricalDistribution)
    assert set(seen["act"].choices) == {"relu", "gelu", "tanh"}
