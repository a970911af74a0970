"""MLflow bookkeeping against a real SQLite store: idempotent runs, batches, final statuses."""

from __future__ import annotations

import pickle

import pytest
from mlflow.tracking import MlflowClient

from mmsa_core.config import RunConfig
from sweeps.tracking import Tracker, experiment_name, flatten_params


@pytest.fixture(scope="module")
def db_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(scope="module")
def tracker(db_dir):
    """One SQLite store per module (creating one takes seconds); each test uses its own experiment."""
    return Tracker(f"sqlite:///{db_dir}/mlflow.db")


def test_experiment_per_dataset_with_artifacts_beside_the_db(tracker, db_dir):
    a = tracker.experiment("synthetic-mosi")
    assert tracker.experiment("synthetic-mosi") == a
    exp = tracker.client.get_experiment(a)
    assert exp.name == experiment_name("synthetic-mosi") == "mmsa-synthetic-mosi"
    assert exp.artifact_location == f"file://{db_dir}/mlartifacts/mmsa-synthetic-mosi"
    assert tracker.experiment("mosi_utt") != a


def test_parent_is_found_again_by_kind_and_name(tracker):
    exp = tracker.experiment("parents")
    p = tracker.parent_run(exp, name="s1", kind="sweep", tags={"method": "hscl"})
    tracker.finish(p, "KILLED")
    assert tracker.parent_run(exp, name="s1", kind="sweep", tags={"method": "hscl"}) == p
    assert tracker.status(p) == "RUNNING"
    assert tracker.parent_run(exp, name="s2", kind="sweep", tags={}) != p
    assert tracker.parent_run(exp, name="s1", kind="ablation", tags={}) != p


def test_child_runs_are_idempotent_and_duplicates_are_removed(tracker):
    exp = tracker.experiment("children")
    parent = tracker.parent_run(exp, name="s", kind="sweep", tags={})
    params = flatten_params(RunConfig(disabled_losses=("sim_ta",)).to_dict())
    assert params["disabled_losses"] == '["sim_ta"]'
    rid, existed = tracker.child_run(experiment_id=exp, parent_run_id=parent, run_key="t1",
                                     run_name="s-t1", tags={"stage": "search"}, params=params)
    assert not existed
    tracker.finish(rid, "FAILED", tags={"error": "boom"})
    again, existed = tracker.child_run(experiment_id=exp, parent_run_id=parent, run_key="t1",
                                       run_name="s-t1", tags={"stage": "search"}, params=params)
    assert (again, existed) == (rid, True) and tracker.status(rid) == "RUNNING"
    # a retried POST created a second run with the same key: the oldest one is kept, the other deleted
    dup = tracker.client.create_run(exp, tags={"mlflow.parentRunId": parent, "run_key": "t1"}).info.run_id
    kept, _ = tracker.child_run(experiment_id=exp, parent_run_id=parent, run_key="t1",
                                run_name="s-t1", tags={}, params=params)
    assert kept == rid
    runs = [tracker.client.get_run(rid), tracker.client.get_run(dup)]
    assert tracker._dedupe(runs, runs[1]).info.run_id == rid
    assert [r.info.run_id for r in tracker.children(exp, parent)] == [rid]
    run = tracker.client.get_run(rid)
    assert run.data.tags["mlflow.parentRunId"] == parent and run.data.params["hscl.tau"] == "0.5"


def test_metrics_one_batch_per_epoch_and_leftovers_killed(tracker):
    exp = tracker.experiment("metrics")
    parent = tracker.parent_run(exp, name="s", kind="sweep", tags={})
    a, _ = tracker.child_run(experiment_id=exp, parent_run_id=parent, run_key="a", run_name="a",
                             tags={"stage": "search"}, params={})
    b, _ = tracker.child_run(experiment_id=exp, parent_run_id=parent, run_key="b", run_name="b",
                             tags={"stage": "final"}, params={})
    for epoch in (1, 2):
        tracker.log_metrics(a, {"valid/mae": 1.0 / epoch, "train/loss": 2.0}, step=epoch)
    hist = tracker.client.get_metric_history(a, "valid/mae")
    assert [(m.step, m.value) for m in hist] == [(1, 1.0), (2, 0.5)]
    tracker.finish(a, "FINISHED", tags={"stopped_early": "false"})
    assert tracker.kill_leftovers(exp, parent, reason="test") == [b]
    assert tracker.status(b) == "KILLED" and tracker.status(a) == "FINISHED"
    assert {r.info.run_id for r in tracker.children(exp, parent, stage="final")} == {b}
    with pytest.raises(ValueError):
        tracker.finish(a, "RUNNING")


def test_tracker_pickles_without_its_connection(tracker):
    tracker.experiment("pickles")
    clone = pickle.loads(pickle.dumps(tracker))
    assert clone.tracking_uri == tracker.tracking_uri and clone._client is None
    assert isinstance(clone.client, MlflowClient)


def test_lookup_keys_are_restricted(tracker):
    exp = tracker.experiment("x")
    with pytest.raises(ValueError):
        tracker.find_child(exp, "p", "it's")


def test_reopen_continues_an_existing_run_only(tracker):
    exp = tracker.experiment("reopen")
    parent = tracker.parent_run(exp, name="s", kind="sweep", tags={})
    rid, _ = tracker.child_run(experiment_id=exp, parent_run_id=parent, run_key="k", run_name="k",
                               tags={}, params={})
    tracker.finish(rid, "FAILED")
    assert tracker.reopen(rid, {"stage": "search"}) and tracker.status(rid) == "RUNNING"
    tracker.client.delete_run(rid)
    assert not tracker.reopen(rid, {})
    assert not tracker.reopen("0" * 32, {})
