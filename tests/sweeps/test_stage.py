"""Pieces of the Ray side that need no cluster: fault injection, interruption, results."""

from __future__ import annotations

import pytest

from sweeps.config import SweepResult
from sweeps.faults import FaultSpec
from sweeps.stage import SweepInterrupted, require_complete


def test_fault_spec_claims_one_trial_and_counts_its_attempts(tmp_path):
    once, always = FaultSpec.parse(f"trial=*,epoch=2,times=1,marker={tmp_path}/a;"
                                      f"epoch=1,times=-1,marker={tmp_path}/b")
    assert not once.fires("t1", 1)  # wrong epoch
    assert once.fires("t1", 2)  # t1 claims it ...
    assert not once.fires("t1", 2)  # ... once
    assert not once.fires("t2", 2)  # and nobody else
    assert all(always.fires("t3", 1) for _ in range(5))
    assert not always.fires("t4", 1)
    suffix = FaultSpec.parse(f"trial=00001,epoch=1,marker={tmp_path}/c")[0]
    assert not suffix.fires("abc_00000", 1) and suffix.fires("abc_00001", 1)
    assert FaultSpec.parse("") == []


def test_a_partial_fit_is_an_interrupt_not_a_result():
    class Grid(list):
        def __init__(self, n, terminated, errors):
            super().__init__(range(n))
            self.num_terminated, self.num_errors = terminated, errors

    require_complete(Grid(3, 2, 1), 3, "x")
    with pytest.raises(SweepInterrupted):
        require_complete(Grid(3, 1, 1), 3, "x")  # a trial still running
    with pytest.raises(SweepInterrupted):
        require_complete(Grid(2, 2, 0), 3, "x")  # a trial never created
    with pytest.raises(KeyboardInterrupt):  # callers that handle Ctrl-C handle this too
        require_complete(Grid(1, 0, 0), 1, "x")


def test_summary_is_mean_and_std_over_finished_seeds():
    from sweeps.config import GridRunResult

    res = SweepResult(name="s", sweep_dir="/d", tracking_uri="u", experiment_id="1",
                         parent_run_id="p", study_name="s-1", best_config={}, best_trial_id="t",
                         best_objective=0.5, search_trials=3, final=[
                             GridRunResult(key="a", run_id="1", status="FINISHED", best_test={"mae": 1.0}),
                             GridRunResult(key="b", run_id="2", status="SKIPPED", best_test={"mae": 3.0}),
                             GridRunResult(key="c", run_id="3", status="FAILED", best_test={"mae": 9.0})])
    assert res.summary() == {"mae": {"mean": 2.0, "std": pytest.approx(1.41421356), "n": 2}}
