"""The value Optuna and ASHA learn from, chosen so that fidelities are never silently mixed.

**Objective = the trial's best validation ``select_metric`` so far** (``best/valid/mae`` by
default, the trainer's own model-selection criterion), reported after every epoch.

Why this is fidelity-robust: Ray's `OptunaSearch` tells Optuna that an ASHA-stopped trial
COMPLETED with its *last* reported value. With a best-so-far objective that value is monotone in
the budget — for MAE it can only fall with more epochs — so a stopped trial tells Optuna a
*pessimistic bound* (what it reached, never better than what it would have reached), and a
full-fidelity trial tells the value model selection actually uses. Low-fidelity values can make a
configuration look worse, never better, which is the same judgement ASHA made when it stopped the
trial against its peers at the same rung. The per-epoch value of a noisy metric (the default
``valid/mae`` at the last epoch) has neither property.

Analyses that need comparable values (parameter importance) must still use full-fidelity trials
only: child runs carry ``stop_reason`` = ``scheduler`` (ASHA), ``patience`` or ``max_epochs`` and
``stopped_early``; use ``stop_reason != 'scheduler'``.

NaN never reaches Optuna (a NaN makes ``study.tell`` fail silently and leaves the trial RUNNING):
a non-finite objective raises `NonFiniteObjectiveError` inside the trial, which then fails.
Pure Python; no Ray, no MLflow.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from mmsa_core.config import RunConfig
    from mmsa_core.trainer import EpochRecord

OBJECTIVE = "objective"  # the Tune/Optuna metric name
EPOCH = "epoch"  # ASHA's time attribute (1-based epochs, continues across restores)
TRAINER_DONE = "trainer_done"  # 1.0 when the trainer itself ends after this epoch


class NonFiniteObjectiveError(FloatingPointError):
    """The validation metric the sweep optimises is NaN/inf."""


def mode_for(select_metric: str) -> str:
    """Optimisation direction: MAE is minimised, correlation and accuracy maximised."""
    return "min" if select_metric == "mae" else "max"


def objective_value(record: "EpochRecord", cfg: "RunConfig") -> float:
    """Best validation value so far of ``cfg.select_metric``; raises when it is not finite."""
    value = float(record.best_valid.get(cfg.select_metric, math.nan))
    if not math.isfinite(value):
        raise NonFiniteObjectiveError(
            f"validation {cfg.select_metric} is {value} at epoch {record.epoch}: the trial fails "
            f"rather than report a non-finite objective to Optuna")
    return value


def trainer_will_stop(record: "EpochRecord", cfg: "RunConfig") -> bool:
    """Whether the trainer ends after this epoch on its own (max_epochs or patience).

    Mirrors `mmsa_core.trainer.train`: patience counts epochs since the best one, and it only
    stops a run before max_epochs.
    """
    return record.epoch >= cfg.max_epochs or (record.epoch - record.best_epoch) >= cfg.patience


def stop_reason(last_result: Mapping[str, Any], max_epochs: int) -> str:
    """``max_epochs`` | ``patience`` (the trainer ended) or ``scheduler`` (ASHA stopped it)."""
    epoch = int(last_result.get(EPOCH, 0) or 0)
    if last_result.get(TRAINER_DONE, 0.0):
        return "max_epochs" if epoch >= max_epochs else "patience"
    return "scheduler"
