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


def test_experiments_are_model_training_experiments_also_when_reused(tracker):
    from sweeps.tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG

    exp = tracker.experiment("kinds")
    assert tracker.client.get_experiment(exp).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    old = tracker.client.create_experiment("mmsa-made-before-the-tag")  # an older store's experiment
    tracker.client.set_experiment_tag(old, EXPERIMENT_KIND_TAG, "genai_development")
    assert tracker.experiment("made-before-the-tag") == old
    assert tracker.client.get_experiment(old).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND


def _fake_data(source: str, name: str, synthetic: bool, sizes=(8, 4, 4)):
    from types import SimpleNamespace

    return SimpleNamespace(name=name, source=source, is_synthetic=synthetic, text_len=10, audio_dim=5,
                           vision_dim=20, sizes=dict(zip(("train", "valid", "test"), sizes)))


def test_dataset_record_digests(tmp_path):
    from sweeps.tracking import dataset_record

    a = dataset_record(_fake_data("synthetic-mosi", "synthetic-mosi", True))
    assert a == dataset_record(_fake_data("synthetic-mosi", "synthetic-mosi", True))
    assert a["digest"] != dataset_record(_fake_data("synthetic-mosi", "synthetic-mosi", True, (9, 4, 4)))["digest"]
    assert a["source_type"] == "synthetic" and a["sizes"] == {"train": 8, "valid": 4, "test": 4}
    f = tmp_path / "mosi.pkl"
    f.write_bytes(b"one")
    b = dataset_record(_fake_data(str(f), "mosi", False))
    assert (b["source"], b["source_type"]) == (str(f), "local")
    f.write_bytes(b"two")
    assert dataset_record(_fake_data(str(f), "mosi", False))["digest"] != b["digest"]


def test_dataset_input_is_logged_once_per_run_and_trials_need_the_digest(tracker):
    import json

    from sweeps.tracking import DATASET_DIGEST_TAG, dataset_record

    exp = tracker.experiment("inputs")
    data = _fake_data("synthetic-mosi", "synthetic-mosi", True)
    record = dataset_record(data)
    parent = tracker.parent_run(exp, name="p", kind="sweep", tags={})
    tracker.log_dataset(parent, record, context="sweep")
    child, _ = tracker.child_run(experiment_id=exp, parent_run_id=parent, run_key="k1", run_name="c",
                                 tags={}, params={})
    for _ in range(2):  # a resumed trial logs it again: still one input
        tracker.log_trial_dataset(child, data, {DATASET_DIGEST_TAG: record["digest"]}, context="search")
    other, _ = tracker.child_run(experiment_id=exp, parent_run_id=parent, run_key="k2", run_name="c2",
                                 tags={}, params={})
    tracker.log_trial_dataset(other, data, {}, context="search")  # no digest from the driver: nothing
    inputs = tracker.client.get_run(child).inputs.dataset_inputs
    assert len(inputs) == 1
    ds = inputs[0].dataset
    assert (ds.name, ds.digest, ds.source_type) == ("synthetic-mosi", record["digest"], "synthetic")
    assert json.loads(ds.profile)["splits"] == {"train": 8, "valid": 4, "test": 4}
    assert {t.key: t.value for t in inputs[0].tags}["mlflow.data.context"] == "search"
    assert tracker.client.get_run(other).inputs.dataset_inputs == []
    tracker.describe(parent, "hscl sweep")
    assert tracker.client.get_run(parent).data.tags["mlflow.note.content"] == "hscl sweep"


def test_parent_run_records_the_dataset_and_hands_its_digest_to_the_children(tracker):
    from sweeps.lifecycle import parent_run
    from sweeps.tracking import DATASET_DIGEST_TAG, dataset_record

    exp = tracker.experiment("lifecycle-inputs")
    data = _fake_data("synthetic-mosi", "synthetic-mosi", True)
    with parent_run(tracker, exp, name="p", kind="sweep", tags={}, dataset=data,
                    description="hscl sweep on synthetic-mosi") as parent:
        target = parent.target(method="hscl")
        parent.describe("hscl sweep on synthetic-mosi. Best: 1.0")
    assert target.tags[DATASET_DIGEST_TAG] == dataset_record(data)["digest"]
    run = tracker.client.get_run(parent.run_id)
    assert run.data.tags["mlflow.note.content"] == "hscl sweep on synthetic-mosi. Best: 1.0"
    (inp,) = run.inputs.dataset_inputs
    assert inp.dataset.digest == target.tags[DATASET_DIGEST_TAG]
    assert {t.key: t.value for t in inp.tags}["mlflow.data.context"] == "sweep"
