"""Search spaces are data: ranges, scales, start points, and the define-by-run function."""

from __future__ import annotations

import json
import math
import pickle

import optuna
import pytest

from mmsa_core.config import RunConfig
from mmsa_core.objectives import METHODS
from sweeps.spaces import SPACES, Param, spans_decades


def test_every_method_has_a_space():
    assert set(METHODS) <= set(SPACES)


def test_hscl_space_is_the_four_loss_hyperparameters_plus_optional_optimiser():
    space = SPACES["hscl"]
    assert [p.name for p in space.params()] == ["omega1", "omega2", "alpha", "tau"]
    assert [p.name for p in space.params(True)][4:] == ["lr_text", "lr_other", "dropout"]
    for p in space.params(True):
        assert p.name in RunConfig.field_names()
        assert p.log == spans_decades(p), f"{p.name}: log scale exactly where the range spans decades"


@pytest.mark.parametrize("preset", [RunConfig.paper_mosi(), RunConfig.paper_mosei()])
def test_paper_values_lie_inside_the_ranges(preset):
    for p in SPACES["hscl"].params(True):
        assert p.low <= getattr(preset, p.name) <= p.high, p.name
    assert SPACES["hscl"].start_point(preset) == {"omega1": preset.omega1, "omega2": preset.omega2,
                                                   "alpha": preset.alpha, "tau": preset.tau}


def test_define_by_run_samples_inside_the_ranges_and_is_picklable():
    fn = SPACES["hscl"].define_by_run(True)
    pickle.loads(pickle.dumps(fn))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        assert fn(trial) is None  # no computation, no returned constants
        for p in SPACES["hscl"].params(True):
            assert p.low <= trial.params[p.name] <= p.high
        study.tell(trial, 1.0)
    logs = [t.distributions["omega1"].log for t in study.trials]
    assert all(logs)


def test_description_is_json_and_names_the_distribution():
    desc = SPACES["hscl"].describe()
    json.dumps(desc)
    assert {d["distribution"] for d in desc} == {"log-uniform"}


def test_param_validation():
    with pytest.raises(ValueError):
        Param("x", 1.0, 1.0, False)
    with pytest.raises(ValueError):
        Param("x", 0.0, 1.0, True)
    assert Param("x", 0.1, 0.2, False).clip(5) == 0.2
    assert not math.isnan(Param("x", 0.1, 0.2, False).clip(-1))
