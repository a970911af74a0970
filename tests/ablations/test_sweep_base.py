"""`base: {sweep: NAME_OR_PARENT_RUN_ID}`: the best configuration of a finished sweep, from MLflow."""

from __future__ import annotations

import pytest

from ablations.runner import resolve_sweep_base, validate_only
from ablations.study import StudyError
from sweeps.runtime_options import RuntimeOptions
from ablations.spec import AblationSpecError, parse_spec
from tests.core.conftest import run_config


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A SQLite store holding one sweep parent run with its best_config.json."""
    from sweeps.tracking import Tracker

    root = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{root}/mlflow.db"
    tracker = Tracker(uri)
    exp = tracker.experiment("synthetic-mosi")
    parent = tracker.parent_run(exp, name="s1", kind="sweep", tags={"method": "hscl", "dataset": "synthetic-mosi"})
    best = run_config(text_encoder="tiny", omega1=0.05, omega2=0.3, tau=0.2, seed=77)
    tracker.log_json(parent, {"trial_id": "t1", "objective": 0.9, "config": best.to_dict()}, "best_config.json")
    tracker.finish(parent, "FINISHED")
    return uri, parent, tracker


def spec_for(base: dict, method: str = "hscl"):
    return parse_spec({"name": "abl", "method": method, "base": base,
                       "variants": [{"name": "full"}, {"name": "nofuse", "disable": ["supcr_fusion"]}]},
                      source="abl.yaml")


@pytest.mark.parametrize("by", ["name", "run id"])
def test_base_is_the_sweeps_best_configuration(store, by):
    uri, parent, tracker = store
    spec = spec_for({"sweep": "s1" if by == "name" else parent, "overrides": {"max_epochs": 3}})
    resolved = resolve_sweep_base(spec, tracker)
    full = resolved.config("full")
    assert (full.params.omega1, full.params.omega2, full.params.tau, full.text_encoder) == (0.05, 0.3, 0.2, "tiny")
    assert full.max_epochs == 3, "the spec's base overrides apply on top of the sweep's configuration"
    assert full.seed == resolved.seeds[0], "seeds come from the spec, never from the sweep"
    assert resolved.config("nofuse").disabled_losses == ("supcr_fusion",)


def test_unknown_sweep_lists_the_sweeps_there(store):
    uri, _, tracker = store
    with pytest.raises(StudyError, match=r"base sweep 'nope' not found .*sweeps there: \['s1'\]"):
        resolve_sweep_base(spec_for({"sweep": "nope"}), tracker)


def test_a_sweep_of_another_method_is_refused(store):
    _, _, tracker = store
    with pytest.raises(AblationSpecError, match="tuned method 'hscl', the study runs 'l1'"):
        resolve_sweep_base(parse_spec({"name": "x", "method": "l1", "base": {"sweep": "s1"},
                                       "variants": ["full"]}, source="x.yaml"), tracker)


def test_validate_only_resolves_the_sweep_when_the_store_exists(store, tmp_path):
    uri, _, _ = store
    text = validate_only(spec_for({"sweep": "s1"}), RuntimeOptions(tracking_uri=uri))
    assert "best configuration of sweep 's1'" in text and "nothing was run" in text
    missing = validate_only(spec_for({"sweep": "s1"}), RuntimeOptions(tracking_uri=f"sqlite:///{tmp_path}/none.db"))
    assert "not resolved" in missing
