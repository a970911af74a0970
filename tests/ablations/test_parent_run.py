"""`run_ablation`'s MLflow parent run (through `sweeps.lifecycle.parent_run`), with no Ray: the
connection and the grid are replaced, the data, the models and the SQLite store are real."""

from __future__ import annotations

import pytest

SPEC = """# Question: does the parent run end as the study did?
name: life
method: hscl
data: synthetic-mosi
base: {text_encoder: tiny, synthetic_train: 96, synthetic_valid: 48, synthetic_test: 48,
       batch_size: 32, max_epochs: 2, av_layers: 1}
seeds: [1111, 1112]
variants:
  - full
  - {name: text_only, modalities: t}
"""


@pytest.fixture
def study(tmp_path, monkeypatch):
    """(spec, options, outcome): `outcome["grid"]` is what the fake grid does after opening the children."""
    import sweeps.grid
    import sweeps.lifecycle
    from ablations import load_spec
    from sweeps.runtime_options import RuntimeOptions
    from sweeps.config import GridRunResult
    from sweeps.tracking import Tracker

    path = tmp_path / "life.yaml"
    path.write_text(SPEC)
    outcome: dict = {"grid": "finished"}

    def fake_grid(runs, *, target, **kw):
        tracker = Tracker(target.tracking_uri)
        results = []
        for r in runs:  # children opened and left RUNNING, as a killed grid leaves them
            run_id, _ = tracker.child_run(experiment_id=target.experiment_id, parent_run_id=target.parent_run_id,
                                          run_key=r.key, run_name=r.name, tags={**target.tags, **r.tags}, params={})
            results.append(GridRunResult(key=r.key, run_id=run_id, status="FINISHED", best_test={"mae": 1.0}))
        if isinstance(outcome["grid"], BaseException):
            raise outcome["grid"]
        if outcome["grid"] == "one failed":
            results[0] = GridRunResult(key=results[0].key, run_id=results[0].run_id, status="FAILED", error="x")
        return results

    monkeypatch.setattr(sweeps.lifecycle, "connect_checked", lambda *a, **k: {})
    monkeypatch.setattr(sweeps.grid, "run_grid", fake_grid)
    opts = RuntimeOptions(storage_path=str(tmp_path / "runs"), tracking_uri=f"sqlite:///{tmp_path}/runs/mlflow.db")
    return load_spec(path), opts, outcome


def _parent(opts):
    from tests.ablations.conftest import study_runs

    return study_runs(opts.resolved_tracking_uri(), "life")


def test_a_finished_study_finishes_its_parent_with_every_tag(study):
    from ablations.runner import run_ablation

    spec, opts, _ = study
    summary = run_ablation(spec, opts)
    client, parent, children = _parent(opts)
    assert summary.ok and parent.info.status == "FINISHED" and parent.info.run_id == summary.outcome.parent_run_id
    tags = parent.data.tags
    assert {"kind", "sweep_name", "method", "dataset", "sampler", "code_version", "config_hash",
            "reference_variant", "variants", "seeds", "spec_source", "study_dir"} <= set(tags)
    assert (tags["kind"], tags["sampler"], tags["variants"], tags["seeds"]) == (
        "ablation", "grid", "full,text_only", "1111,1112")
    assert "error" not in tags
    assert {"ablation_spec.yaml", "ablation_configs.json", "ablation_summary.json"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {(c.info.status, c.data.tags["killed_reason"]) for c in children} == {
        ("KILLED", "ablation ended (FINISHED)")}


def test_a_study_with_a_failed_run_fails_its_parent(study):
    from ablations.runner import run_ablation

    spec, opts, outcome = study
    outcome["grid"] = "one failed"
    assert not run_ablation(spec, opts).ok
    _, parent, _ = _parent(opts)
    assert parent.info.status == "FAILED" and "error" not in parent.data.tags


@pytest.mark.parametrize("error, status", [("interrupt", "KILLED"), ("state", "FAILED"), ("bug", "FAILED")])
def test_an_interrupted_or_broken_study_ends_its_parent(study, error, status):
    from ablations.runner import run_ablation
    from ablations.study import StudyError
    from sweeps.state import SweepStateError

    spec, opts, outcome = study
    outcome["grid"], raised, tag = {
        "interrupt": (KeyboardInterrupt(), KeyboardInterrupt, None),
        "state": (SweepStateError("grid changed"), StudyError, "StudyError: grid changed"),
        "bug": (RuntimeError("boom"), RuntimeError, "RuntimeError: boom"),
    }[error]
    with pytest.raises(raised):
        run_ablation(spec, opts)
    _, parent, children = _parent(opts)
    assert parent.info.status == status and parent.data.tags.get("error") == tag
    assert {(c.info.status, c.data.tags["killed_reason"]) for c in children} == {
        ("KILLED", f"ablation ended ({status})")}
