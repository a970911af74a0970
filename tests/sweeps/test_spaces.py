"""Search spaces are data: ranges, scales, kinds, conditions, start points, define-by-run."""

from __future__ import annotations

import json
import math
import pickle

import optuna
import pytest

from mmsa_core.config import RunConfig
from mmsa_core.methods import method_names
from sweeps.spaces import SPACES, Param, SearchSpace, define_by_run_for, spans_decades


def test_every_registered_method_has_a_space():
    assert tuple(SPACES) == method_names() and {"hscl", "l1"} <= set(SPACES)


def test_hscl_space_is_the_four_loss_hyperparameters_plus_optional_optimiser():
    space = SPACES["hscl"]
    assert space.names() == ("hscl.omega1", "hscl.omega2", "hscl.alpha", "hscl.tau")
    assert space.names(True)[4:] == ("lr_text", "lr_other", "dropout")
    keys = RunConfig.paper("hscl").keys()
    for p in space.params(True):
        assert p.name in keys
        assert p.log == spans_decades(p), f"{p.name}: log scale exactly where the range spans decades"


@pytest.mark.parametrize("preset", [RunConfig.paper_mosi(), RunConfig.paper_mosei()])
def test_paper_values_lie_inside_the_ranges(preset):
    values = preset.to_dict()
    for p in SPACES["hscl"].params(True):
        assert p.low <= values[p.name] <= p.high, p.name
    p = preset.params
    assert SPACES["hscl"].start_point(preset.to_dict()) == {"hscl.omega1": p.omega1, "hscl.omega2": p.omega2,
                                                   "hscl.alpha": p.alpha, "hscl.tau": p.tau}


def test_define_by_run_samples_inside_the_ranges_and_is_picklable():
    fn = define_by_run_for(SPACES["hscl"], RunConfig().to_dict(), True)
    pickle.loads(pickle.dumps(fn))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        assert fn(trial) is None  # no computation, no returned constants
        for p in SPACES["hscl"].params(True):
            assert p.low <= trial.params[p.name] <= p.high
        study.tell(trial, 1.0)
    assert all(t.distributions["hscl.omega1"].log for t in study.trials)


def test_int_categorical_and_conditional_parameters():
    space = SearchSpace("toy", core=(
        Param("toy.rule", kind="categorical", choices=("sign2", "sign3", "round7")),
        Param("toy.k", 1, 3, kind="int"),
        Param("toy.hard", kind="categorical", choices=(False, True)),
        Param("toy.beta", 0.1, 2.0, log=True, when={"toy.hard": (True,)}),
        Param("toy.width", 16, 64, kind="int", step=16, when={"toy.fixed": ("x",)}),
    ))
    fn = define_by_run_for(space, {"toy.fixed": "y"})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen_hard = set()
    for _ in range(30):
        trial = study.ask()
        fn(trial)
        params = trial.params
        assert params["toy.rule"] in ("sign2", "sign3", "round7")
        assert isinstance(params["toy.k"], int) and 1 <= params["toy.k"] <= 3
        assert ("toy.beta" in params) is params["toy.hard"]  # only sampled under its condition
        assert "toy.width" not in params  # its condition is on a fixed value that never holds
        seen_hard.add(params["toy.hard"])
        study.tell(trial, 1.0)
    assert seen_hard == {False, True}
    desc = space.describe()
    json.dumps(desc)
    assert [d["distribution"] for d in desc] == ["categorical", "int-uniform", "categorical",
                                                  "log-uniform", "int-uniform"]
    assert desc[3]["when"] == {"toy.hard": [True]} and desc[4]["step"] == 16


def test_start_point_skips_a_parameter_whose_condition_fails():
    cfg = RunConfig()
    space = SearchSpace("hscl", core=(Param("hscl.label_info", kind="categorical", choices=("supcr", "infonce")),
                                       Param("hscl.tau", 0.05, 1.0, True, when={"hscl.label_info": ("infonce",)})))
    assert space.start_point(cfg.to_dict()) == {"hscl.label_info": "supcr"}


def test_description_is_json_and_names_the_distribution():
    desc = SPACES["hscl"].describe()
    json.dumps(desc)
    assert {d["distribution"] for d in desc} == {"log-uniform"}
    assert set(desc[0]) == {"name", "low", "high", "log", "why", "distribution"}


def test_param_validation():
    with pytest.raises(ValueError):
        Param("x", 1.0, 1.0, False)
    with pytest.raises(ValueError):
        Param("x", 0.0, 1.0, True)
    with pytest.raises(ValueError, match="at least two choices"):
        Param("x", kind="categorical", choices=("a",))
    with pytest.raises(ValueError, match="integer bounds"):
        Param("x", 0.5, 3, kind="int")
    assert Param("x", 0.1, 0.2, False).clip(5) == 0.2
    assert Param("k", 1, 3, kind="int").clip(7.2) == 3
    assert not math.isnan(Param("x", 0.1, 0.2, False).clip(-1))


# The searcher state of a sweep started on b80cd94 pickles this define-by-run function (old `Param`s,
# flat HSCL names); a resumed sweep unpickles it with today's classes.
_OLD_DEFINE_BY_RUN = (
    "gASVeQIAAAAAAACMCWZ1bmN0b29sc5SMB3BhcnRpYWyUk5SMDXN3ZWVwcy5zcGFjZXOUjA1kZWZpbmVfYnlfcnVulJOUhZRS"
    "lChoBSl9lIwGcGFyYW1zlChoA4wFUGFyYW2Uk5QpgZR9lCiMBG5hbWWUjAZvbWVnYTGUjANsb3eURz9QYk3S8an8jARoaWdo"
    "lEc/8AAAAAAAAIwDbG9nlIiMA3doeZSMUnVuaW1vZGFsLWxldmVsIGxvc3Mgd2VpZ2h0OyB0aGUgcGFwZXIncyB2YWx1ZSBp"
    "cyBzbWFsbCBhbmQgdGhlIHJhbmdlIHNwYW5zIGRlY2FkZXOUdWJoCymBlH2UKGgOjAZvbWVnYTKUaBBHP1BiTdLxqfxoEUc/"
    "8AAAAAAAAGgSiGgTjFBmdXNpb24tbGV2ZWwgbG9zcyB3ZWlnaHQ7IHRoZSBwYXBlcidzIHZhbHVlIGlzIHNtYWxsIGFuZCB0"
    "aGUgcmFuZ2Ugc3BhbnMgZGVjYWRlc5R1YmgLKYGUfZQoaA6MBWFscGhhlGgQRz9QYk3S8an8aBFHP/AAAAAAAABoEohoE4xl"
    "c2ltaWxhcml0eSB0ZXJtIGluc2lkZSBlYWNoIHBhaXI7IGxvc3Mgd2VpZ2h0OyB0aGUgcGFwZXIncyB2YWx1ZSBpcyBzbWFs"
    "bCBhbmQgdGhlIHJhbmdlIHNwYW5zIGRlY2FkZXOUdWJoCymBlH2UKGgOjAN0YXWUaBBHP6mZmZmZmZpoEUc/8AAAAAAAAGgS"
    "iGgTjDRTdXBDUiB0ZW1wZXJhdHVyZTogYWN0cyB0aHJvdWdoIHJhdGlvcywgc28gbG9nIHNjYWxllHVidJRzTnSUYi4="
)


def test_a_define_by_run_pickled_before_method_packages_still_samples():
    import base64

    fn = pickle.loads(base64.b64decode(_OLD_DEFINE_BY_RUN))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    fn(trial)
    assert set(trial.params) == {"omega1", "omega2", "alpha", "tau"}
    from sweeps.compat import upgrade_config

    with pytest.warns(FutureWarning, match=r"hscl\.tau.*until mmsa-sweeps 0\.3\.0"):  # the trial upgrades them
        values = upgrade_config(trial.params, source="restored trial")
    cfg = RunConfig.from_dict(values, source="restored trial")
    assert cfg.params.tau == trial.params["tau"]
