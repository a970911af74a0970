"""reports.runs: search_runs -> tidy frame, param casting, FINISHED filter, name resolution."""

from __future__ import annotations

import pytest

from reports import runs
from tests.reports.conftest import EXPERIMENT


def test_cast_param_per_column():
    assert runs.cast_param(["1", "20", None]) == [1, 20, None]
    assert runs.cast_param(["0.1", "1e-05", "3"]) == [0.1, 1e-05, 3.0]
    assert runs.cast_param(["True", "False"]) == [True, False]
    assert runs.cast_param(["[]", '["sim_ta", "sim_tv"]']) == [(), ("sim_ta", "sim_tv")]
    assert runs.cast_param(["tav", "ta"]) == ["tav", "ta"]
    assert runs.cast_param(["1", "tav"]) == ["1", "tav"]  # mixed column stays text
    assert runs.cast_param([None, None]) == [None, None]


def test_load_runs_tidy_and_counts(store):
    rs = runs.load_runs(store.uri, store.experiment_id, parent_run_id=store.parents["hscl-synthetic-s1"],
                        tags={"stage": "final"})
    assert rs.excluded == {"RUNNING": 1} and rs.n_excluded == 1 and len(rs.excluded_ids) == 1
    f = rs.runs
    assert len(f) == 5 and set(f["status"]) == {"FINISHED"}
    assert sorted(f["seed"].tolist()) == [1111, 1112, 1113, 1114, 1115]
    assert str(f["seed"].dtype) == "Int64"
    assert f["params.max_epochs"].tolist() == [20] * 5 and f["params.omega1"].dtype == float
    assert f["params.faithful"].tolist() == [False] * 5
    assert f["params.disabled_losses"].tolist() == [()] * 5
    assert set(f["method"]) == {"hscl"} and set(f["stage"]) == {"final"} and set(f["dataset"]) == {"synthetic-mosi"}
    # the latest value (step 3), not the decoy logged first at step 1
    got = dict(zip(f["seed"], f["metrics.best/test/mae"]))
    assert got == pytest.approx(store.column("final/hscl-synthetic-s1", "mae"))


def test_reference_and_stopped_early_flags(store):
    rs = runs.load_runs(store.uri, store.experiment_id, parent_run_id=store.parents["hscl-ablation"])
    f = rs.runs
    assert rs.excluded == {"FAILED": 1}
    assert set(f.loc[f["reference"], "ablation"]) == {"full"}
    search = runs.load_runs(store.uri, store.experiment_id, parent_run_id=store.parents["hscl-synthetic-s1"],
                            tags={"stage": "search"}).runs
    by_trial = dict(zip(search["trial_id"], search["stopped_early"]))
    assert bool(by_trial["t1"]) is True and bool(by_trial["t0"]) is False


def test_latest_per_seed_keeps_newest():
    import pandas as pd

    f = pd.DataFrame({"seed": pd.array([1, 1, 2, None], dtype="Int64"),
                      "start_time": pd.to_datetime([1, 3, 2, 4], unit="s"), "run_id": ["a", "b", "c", "d"]})
    kept, dropped = runs.latest_per_seed(f)
    assert dropped == 1 and set(kept["run_id"]) == {"b", "c", "d"}


def test_resolution_errors_list_what_exists(store, tmp_path):
    with pytest.raises(runs.ReportError, match=EXPERIMENT):
        runs.resolve_experiment(store.uri, "mmsa-nope")
    assert runs.resolve_experiment(store.uri, None).name == EXPERIMENT  # the only mmsa-* one
    assert runs.resolve_experiment(store.uri, store.experiment_id).name == EXPERIMENT
    with pytest.raises(runs.ReportError, match="hscl-synthetic-s0, hscl-synthetic-s1, l1-synthetic-s1"):
        runs.resolve_parent(store.uri, store.experiment_id, "nope", "sweep")
    with pytest.raises(runs.ReportError, match="available ablations: hscl-ablation"):
        runs.resolve_parent(store.uri, store.experiment_id, "hscl-synthetic-s1", "ablation")
    parent, notes = runs.resolve_parent(store.uri, store.experiment_id, store.parents["l1-synthetic-s1"], "sweep")
    assert parent.name == "l1-synthetic-s1" and parent.method == "l1" and not notes
    with pytest.raises(runs.ReportError, match="no run with id"):
        runs.resolve_experiment(store.uri, None, run_id="0123456789abcdef0123456789abcdef")
    assert runs.resolve_experiment(store.uri, None, run_id=store.parents["hscl-ablation"]).name == EXPERIMENT
    missing = tmp_path / "absent.db"
    with pytest.raises(runs.ReportError, match="no MLflow database"):
        runs.resolve_experiment(f"sqlite:///{missing}", None)
    assert not missing.exists()


def test_redact():
    assert runs.redact("http://user:secret@host:5000") == "http://***@host:5000"
    assert runs.redact("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
