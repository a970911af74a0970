"""The parent-run lifecycle sweeps and ablation studies share (`sweeps.lifecycle`), against a real
SQLite MLflow store: final statuses, the error tag, leftovers KILLED, storage checks; and the
old ``sweeps.tune_runner`` paths that Tune's pickled state names."""

from __future__ import annotations

import pickle

import pytest

from sweeps.state import SweepStateError
from sweeps.tracking import Tracker


@pytest.fixture(scope="module")
def tracker(tmp_path_factory):
    """One SQLite store per module (creating one takes seconds); each test uses its own experiment."""
    return Tracker(f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db")


def _child(tracker, exp, parent, key):
    run_id, _ = tracker.child_run(experiment_id=exp, parent_run_id=parent, run_key=key, run_name=key,
                                  tags={"stage": "search"}, params={})
    return run_id


def _tags(tracker, run_id):
    return tracker.client.get_run(run_id).data.tags


def test_a_body_that_returns_finishes_the_parent_and_kills_leftovers(tracker):
    from sweeps.lifecycle import parent_run

    exp = tracker.experiment("lifecycle-ok")
    with parent_run(tracker, exp, name="s", kind="sweep", tags={"method": "hscl"}) as parent:
        assert tracker.status(parent.run_id) == "RUNNING"
        done = _child(tracker, exp, parent.run_id, "t1")
        tracker.finish(done, "FINISHED")
        open_child = _child(tracker, exp, parent.run_id, "t2")
        target = parent.target(method="hscl", dataset="d")
    assert tracker.status(parent.run_id) == "FINISHED"
    tags = _tags(tracker, parent.run_id)
    assert tags["kind"] == "sweep" and tags["sweep_name"] == "s" and tags["method"] == "hscl"
    assert tags["code_version"] and "error" not in tags
    assert tracker.status(done) == "FINISHED"
    assert tracker.status(open_child) == "KILLED"
    assert _tags(tracker, open_child)["killed_reason"] == "sweep ended (FINISHED)"
    assert (target.tracking_uri, target.experiment_id, target.parent_run_id) == (
        tracker.tracking_uri, exp, parent.run_id)
    assert target.tags == {"sweep_name": "s", "method": "hscl", "dataset": "d"}


@pytest.mark.parametrize("interrupt", ["KeyboardInterrupt", "SweepInterrupted"])
def test_an_interrupt_kills_the_parent_and_is_raised(tracker, interrupt):
    from sweeps.stage import SweepInterrupted
    from sweeps.lifecycle import parent_run

    exp = tracker.experiment(f"lifecycle-{interrupt}")
    error = KeyboardInterrupt() if interrupt == "KeyboardInterrupt" else SweepInterrupted("state saved")
    with pytest.raises(type(error)):
        with parent_run(tracker, exp, name="s", kind="sweep", tags={}) as parent:
            child = _child(tracker, exp, parent.run_id, "t1")
            raise error
    assert tracker.status(parent.run_id) == "KILLED" and "error" not in _tags(tracker, parent.run_id)
    assert tracker.status(child) == "KILLED"
    assert _tags(tracker, child)["killed_reason"] == "sweep ended (KILLED)"


def test_an_error_fails_the_parent_with_an_error_tag_and_a_resume_clears_it(tracker):
    from sweeps.lifecycle import parent_run

    exp = tracker.experiment("lifecycle-error")
    with pytest.raises(RuntimeError, match="no search trial finished"):
        with parent_run(tracker, exp, name="a", kind="ablation", tags={"sampler": "grid"}) as parent:
            child = _child(tracker, exp, parent.run_id, "v-seed1")
            raise RuntimeError("no search trial finished")
    first = parent.run_id
    assert tracker.status(first) == "FAILED"
    assert _tags(tracker, first)["error"] == "RuntimeError: no search trial finished"
    assert _tags(tracker, child)["killed_reason"] == "ablation ended (FAILED)"

    # the same name again: the same parent, RUNNING again, without the old error
    with parent_run(tracker, exp, name="a", kind="ablation", tags={"sampler": "grid"}) as again:
        assert again.run_id == first and tracker.status(first) == "RUNNING"
        assert "error" not in _tags(tracker, first)
    assert tracker.status(first) == "FINISHED" and "error" not in _tags(tracker, first)


def test_the_body_may_end_the_parent_failed_without_an_exception(tracker):
    from sweeps.lifecycle import parent_run

    exp = tracker.experiment("lifecycle-status")
    with parent_run(tracker, exp, name="a", kind="ablation", tags={}) as parent:
        parent.status = "FAILED"  # e.g. some (variant, seed) runs failed
    assert tracker.status(parent.run_id) == "FAILED" and "error" not in _tags(tracker, parent.run_id)

    with pytest.raises(ValueError, match="RUNNING"):
        with parent_run(tracker, exp, name="b", kind="ablation", tags={}) as bad:
            bad.status = "RUNNING"  # not a final status
    assert tracker.status(bad.run_id) == "FAILED" and "RUNNING" in _tags(tracker, bad.run_id)["error"]


def test_a_broken_store_at_the_end_does_not_hide_the_body_error(tracker):
    from sweeps.lifecycle import parent_run

    exp = tracker.experiment("lifecycle-broken")

    class Broken(Tracker):
        def kill_leftovers(self, *a, **k):
            raise OSError("store gone")

        def finish(self, *a, **k):
            raise OSError("store gone")

    broken = Broken(tracker.tracking_uri)
    with pytest.raises(ZeroDivisionError):
        with parent_run(broken, exp, name="s", kind="sweep", tags={}):
            1 / 0


def test_storage_is_checked_before_anything_is_recorded(tmp_path):
    from sweeps.lifecycle import prepare_storage

    prepare_storage(str(tmp_path / "a" / "b"), f"sqlite:///{tmp_path}/db/x/mlflow.db")
    assert (tmp_path / "a" / "b").is_dir() and (tmp_path / "db" / "x").is_dir()
    prepare_storage(str(tmp_path / "c"), "http://127.0.0.1:5000")  # a server: no local folder
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SweepStateError, match="cannot be created"):
        prepare_storage(str(blocker / "sub"), "http://127.0.0.1:5000")
    with pytest.raises(SweepStateError, match="cannot be created"):
        prepare_storage(str(tmp_path / "d"), f"sqlite:///{blocker}/sub/mlflow.db")


def test_every_name_older_versions_pickled_still_resolves():
    """Tune's state of a sweep interrupted before 0.2.0 names ``sweeps.tune_runner.<name>`` (before the
    split by concern) or ``sweeps.callbacks`` / ``grid`` / ``search`` (0.1.0 after it)."""
    from sweeps import compat, tune_objects

    compat.install_moved_names(tune_objects)
    compat.install_moved_names(tune_objects)  # idempotent
    for old, new in compat.MOVED_NAMES.items():  # what unpickling a reference to the old path does
        module, _, name = old.rpartition(".")
        assert pickle.loads(f"c{module}\n{name}\n.".encode()) is getattr(tune_objects, new), old
    from sweeps import grid  # a module that still exists keeps its own names and gains the old one
    assert grid.run_grid and grid._trial_dirname is tune_objects.trial_dirname
    assert tune_objects.make_trainable.__name__ == "make_trainable" and tune_objects.TRAINABLE_NAME == "_trainable"


# --- run_sweep's parent run (no Ray: the connection, the search and the final grid are replaced)


@pytest.fixture
def sweep(tmp_path, monkeypatch):
    """A smoke SweepConfig on a fresh store, and a switch for what the (fake) search does."""
    from sweeps import search
    from sweeps.cluster import DatasetRef
    from sweeps.config import GridRunResult, smoke_config

    runs = tmp_path / "runs"
    from sweeps.runtime_options import RuntimeOptions

    cfg = smoke_config(name="life", runtime=RuntimeOptions(storage_path=str(runs), tracking_uri=f"sqlite:///{runs}/mlflow.db"),
                       final_seeds=(1111,))
    outcome: dict = {"search": None}

    def fake_search(cfg, *, base, mode, target, tracker, **kw):
        if outcome["search"] is not None:
            # a search child left open: the lifecycle must close it
            tracker.child_run(experiment_id=target.experiment_id, parent_run_id=target.parent_run_id,
                              run_key="t1", run_name="t1", tags={"stage": "search"}, params={})
            raise outcome["search"]
        return {"trials": cfg.num_samples, "epochs": 9, "candidates": [
            {"trial_id": "t1", "objective": 0.5, "full_fidelity": True, "epochs": 3, "searched": {},
             "config": base.to_dict()}]}

    def fake_grid(runs, *, target, **kw):
        return [GridRunResult(key=r.key, run_id=None, status="FINISHED", best_test={"mae": 1.0},
                              best_valid={"mae": 0.6}) for r in runs]

    monkeypatch.setattr(search, "connect_checked", lambda *a, **k: {})
    monkeypatch.setattr(search, "share_dataset", lambda data: DatasetRef(ref=None, name=data.name))
    monkeypatch.setattr(search, "search_stage", fake_search)
    monkeypatch.setattr(search, "run_grid", fake_grid)
    return cfg, outcome


def _sweep_parent(cfg):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(cfg.resolved_tracking_uri())
    exp = client.get_experiment_by_name("mmsa-synthetic-mosi")
    (parent,) = client.search_runs([exp.experiment_id], filter_string="tags.kind = 'sweep'")
    children = client.search_runs([exp.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    return client, parent, children


def test_a_finished_sweep_has_every_parent_tag_and_artifact(sweep):
    from sweeps.search import run_sweep

    cfg, _ = sweep
    result = run_sweep(cfg)
    client, parent, _ = _sweep_parent(cfg)
    assert parent.info.status == "FINISHED" and parent.info.run_id == result.parent_run_id
    tags = parent.data.tags
    assert {"kind", "sweep_name", "method", "dataset", "sampler", "sampler_seed", "code_version",
            "config_hash", "study_name", "objective", "smoke", "sweep_dir", "best_trial_id",
            "best_objective"} <= set(tags)
    assert (tags["kind"], tags["sweep_name"], tags["smoke"], tags["best_trial_id"]) == ("sweep", "life", "true", "t1")
    assert "error" not in tags
    assert {"search_space.json", "best_config.json", "final_summary.json"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id)}
    # headline metrics: the search's best, the re-rank (one seed at 0.6 against the search's 0.5: the
    # search value was 0.1 optimistic), the final test mean
    m = parent.data.metrics
    assert m["search/best_objective"] == 0.5 and m["rerank/winner_mean"] == pytest.approx(0.55)
    assert m["rerank/optimism"] == pytest.approx(0.1) and m["final/test/mae"] == 1.0
    assert tags["rerank"] == "1x1"
    assert "Re-ranked on 1 new seed(s)" in tags["mlflow.note.content"] and "+0.1000 optimistic" in tags["mlflow.note.content"]


@pytest.mark.parametrize("error, status", [(KeyboardInterrupt(), "KILLED"),
                                           (RuntimeError("no search trial finished"), "FAILED")])
def test_an_interrupted_or_failed_sweep_ends_its_parent(sweep, error, status):
    from sweeps.search import run_sweep

    cfg, outcome = sweep
    outcome["search"] = error
    with pytest.raises(type(error)):
        run_sweep(cfg)
    _, parent, children = _sweep_parent(cfg)
    assert parent.info.status == status
    assert parent.data.tags.get("error") == (None if status == "KILLED" else "RuntimeError: no search trial finished")
    assert [(c.info.status, c.data.tags["killed_reason"]) for c in children] == [
        ("KILLED", f"sweep ended ({status})")]


def test_a_resume_on_other_data_is_refused_and_leaves_the_parent_as_it_was(tracker):
    """The parent's dataset input has another digest (another file, or synthetic data at other split
    sizes): refused before the parent is reopened, naming both digests and the split sizes; the same
    data resumes."""
    from mmsa_core.data.dataset import load_dataset
    from sweeps.lifecycle import parent_run
    from sweeps.state import DatasetChangedError

    exp = tracker.experiment("lifecycle-data")
    small = load_dataset("synthetic-mosi", text_encoder="tiny", sizes=(64, 32, 32))
    other = load_dataset("synthetic-mosi", text_encoder="tiny", sizes=(64, 48, 32))
    with parent_run(tracker, exp, name="d", kind="sweep", tags={}, dataset=small) as parent:
        pass
    assert tracker.status(parent.run_id) == "FINISHED"
    with pytest.raises(DatasetChangedError, match=r"train/valid/test 64/32/32\).*train/valid/test 64/48/32"):
        with parent_run(tracker, exp, name="d", kind="sweep", tags={}, dataset=other):
            raise AssertionError("the body must not run")
    assert tracker.status(parent.run_id) == "FINISHED" and "error" not in _tags(tracker, parent.run_id)
    assert isinstance(DatasetChangedError("x"), ValueError)  # the studies' entry points answer ValueError with exit 2
    with parent_run(tracker, exp, name="d", kind="sweep", tags={}, dataset=small) as again:
        assert again.run_id == parent.run_id
