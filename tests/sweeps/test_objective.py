"""The fidelity-robust objective: best validation value so far; NaN never reaches Optuna."""

from __future__ import annotations

import math

import pytest

from mmsa_core.config import RunConfig
from mmsa_core.trainer import EpochRecord
from sweeps import objective as obj


def _record(epoch, best_epoch, best_mae, mae=None):
    m = {"mae": mae if mae is not None else best_mae, "corr": 0.1}
    return EpochRecord(epoch=epoch, train={"loss": 1.0}, valid=m, test=m, lr=1e-3, seconds=1.0,
                       is_best=epoch == best_epoch, best_epoch=best_epoch,
                       best_valid={"mae": best_mae, "corr": 0.1}, best_test={"mae": best_mae})


def test_objective_is_the_best_value_so_far_and_mode_follows_the_metric():
    cfg = RunConfig()
    assert obj.objective_value(_record(3, 1, 0.8, mae=1.2), cfg) == 0.8
    assert obj.mode_for("mae") == "min" and obj.mode_for("corr") == "max"
    assert obj.mode_for("acc2_non0") == "max"


def test_non_finite_objective_raises():
    with pytest.raises(obj.NonFiniteObjectiveError):
        obj.objective_value(_record(1, 1, math.nan), RunConfig())


def test_trainer_stop_rule_matches_patience_and_max_epochs():
    cfg = RunConfig(max_epochs=10, patience=3)
    assert not obj.trainer_will_stop(_record(4, 2, 0.8), cfg)
    assert obj.trainer_will_stop(_record(5, 2, 0.8), cfg)
    assert obj.trainer_will_stop(_record(10, 10, 0.8), cfg)


def test_trainer_stop_rule_agrees_with_the_real_trainer():
    """The trainer's own early stop must be predicted exactly (it decides stop_reason)."""
    from mmsa_core.trainer import load_run_data, train

    cfg = RunConfig(text_encoder="tiny", synthetic_train=64, synthetic_valid=32, synthetic_test=32,
                    batch_size=32, max_epochs=6, patience=1, lr_other=1e-6, lr_text=1e-7,
                    av_layers=1, num_threads=1)
    flags = []
    result = train(cfg, load_run_data(cfg), progress=False,
                   on_epoch_end=lambda r, save: flags.append(obj.trainer_will_stop(r, cfg)))
    assert flags[-1] and not any(flags[:-1])
    assert len(flags) == result.epochs_run


def test_stop_reason():
    assert obj.stop_reason({"epoch": 3.0, "trainer_done": 1.0}, 3) == "max_epochs"
    assert obj.stop_reason({"epoch": 2.0, "trainer_done": 1.0}, 3) == "patience"
    assert obj.stop_reason({"epoch": 1.0, "trainer_done": 0.0}, 3) == "scheduler"
