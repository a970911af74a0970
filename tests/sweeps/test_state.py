"""Sweep directory state: unique study per sweep, refusal of changed resumes, journal repair."""

from __future__ import annotations

import json
import os

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from sweeps.state import (SweepStateError, code_version, ensure_dir, open_sweep_state,
                          repair_journal)


def test_state_is_created_once_and_reused(tmp_path):
    d = str(tmp_path / "s")
    a = open_sweep_state(d, name="s", config_hash="h1", tracking_uri="sqlite:////x.db")
    b = open_sweep_state(d, name="s", config_hash="h1", tracking_uri="sqlite:////x.db")
    assert a.study_name == b.study_name and a.study_name.startswith("s-") and len(a.study_name) == 10
    c = open_sweep_state(str(tmp_path / "s2"), name="s", config_hash="h1", tracking_uri="sqlite:////x.db")
    assert c.study_name != a.study_name  # a new sweep never reuses an old study
    b.mark_done("search")
    assert json.loads((tmp_path / "s" / "sweep.json").read_text())["stages_done"] == ["search"]


def test_changed_configuration_or_store_is_refused_with_advice(tmp_path):
    d = str(tmp_path / "s")
    open_sweep_state(d, name="s", config_hash="h1", tracking_uri="sqlite:////x.db")
    with pytest.raises(SweepStateError, match="different configuration.*new --name"):
        open_sweep_state(d, name="s", config_hash="h2", tracking_uri="sqlite:////x.db")
    with pytest.raises(SweepStateError, match="--tracking-uri sqlite:////x.db"):
        open_sweep_state(d, name="s", config_hash="h1", tracking_uri="sqlite:////y.db")


def test_unwritable_storage_path_fails_clearly(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SweepStateError, match="cannot be created"):
        ensure_dir(str(blocker / "sub"))


def test_half_written_journal_line_is_trimmed_and_kept(tmp_path):
    path = str(tmp_path / "optuna_journal.log")
    storage = JournalStorage(JournalFileBackend(path))
    study = optuna.create_study(study_name="s", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    with open(path, "ab") as f:
        f.write(b'{"op_code": 5, "worker_id": "w", "trial_id": 1, "sta')  # crash mid-write
    assert not repair_journal(path + ".missing")
    with pytest.warns(RuntimeWarning, match="half-written"):
        assert repair_journal(path)
    assert open(path, "rb").read().endswith(b"\n")
    fragments = [p for p in os.listdir(tmp_path) if ".fragment-" in p]
    assert len(fragments) == 1
    again = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(path)))
    assert len(again.trials) == 3
    again.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)  # appends work again
    assert not repair_journal(path)


def test_code_version_names_git_or_source_hash(tmp_path):
    v = code_version()
    assert v.startswith("git:") or "+src." in v
    assert "+src." in code_version(str(tmp_path))  # no git there -> hash of (no) sources


def _open(d, config, h):
    return open_sweep_state(d, name="s", config_hash=h, tracking_uri="sqlite:////x.db", config=config)


def test_a_larger_search_extent_extends_the_sweep_and_anything_else_is_refused(tmp_path):
    """--num-samples / --budget-epochs may grow on a re-run (one more search stage on the same study;
    the re-rank and final stages run again); lowering them, or changing any other field, is refused
    naming the field."""
    from sweeps.state import extension_of

    d = str(tmp_path / "s")
    base = {"num_samples": 3, "budget_epochs": 0, "asha_grace_period": 4}
    first = _open(d, base, "h1")
    first.mark_done("search")
    (tmp_path / "s" / "search_result.json").write_text(json.dumps({"trials": 3, "epochs": 9, "candidates": []}))
    (tmp_path / "s" / "best_config.json").write_text(json.dumps({"trial_id": "t1"}))
    first.mark_done("final")

    assert extension_of(base, base) is None
    assert extension_of(base, {**base, "asha_grace_period": 2}) is None
    assert extension_of(base, {**base, "num_samples": 2}) is None
    assert extension_of({**base, "budget_epochs": 12}, {**base, "budget_epochs": 0}) is None
    assert extension_of({"num_samples": 3}, {"num_samples": 3, "budget_epochs": 12})["to"]["budget_epochs"] == 12
    assert extension_of(base, {**base, "budget_epochs": 12}) == {
        "from": {"num_samples": 3, "budget_epochs": 0}, "to": {"num_samples": 3, "budget_epochs": 12}}

    with pytest.raises(SweepStateError, match=r"asha_grace_period 4 -> 2.*new --name"):
        _open(d, {**base, "num_samples": 5, "asha_grace_period": 2}, "h2")
    with pytest.raises(SweepStateError, match=r"num_samples 3 -> 2.*may only grow"):
        _open(d, {**base, "num_samples": 2}, "h3")
    with pytest.raises(SweepStateError, match=r"nothing to extend: its search already ran 3 trials and 9 epochs"):
        _open(d, {**base, "budget_epochs": 6}, "h4")  # a budget below what was spent adds no trial

    grown = _open(d, {**base, "num_samples": 5}, "h5")
    assert grown.config_hash == "h5" and grown.stages_done == []  # every stage runs again (skipping what finished)
    assert grown.search_stages() == ["search", "search-ext1"]
    (ext,) = grown.extensions
    assert ext["from"] == {"num_samples": 3, "budget_epochs": 0} and ext["to"] == {"num_samples": 5, "budget_epochs": 0}
    assert ext["previous_winner"] == "t1" and grown.final_key_owner() == "t1"
    again = _open(d, {**base, "num_samples": 5}, "h5")  # the same command resumes the extension
    assert again.extensions == grown.extensions and again.study_name == first.study_name
    on_disk = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert on_disk["config"]["num_samples"] == 5 and len(on_disk["extensions"]) == 1


def test_extension_room_is_what_the_new_extent_leaves():
    from sweeps.state import extension_room

    assert extension_room({"num_samples": 5, "budget_epochs": 0}, trials=3, epochs=9) == {"num_samples": 2,
                                                                                           "budget_epochs": 0}
    assert extension_room({"num_samples": 30, "budget_epochs": 20}, trials=6, epochs=13) == {"num_samples": 24,
                                                                                              "budget_epochs": 7}
    assert extension_room({"num_samples": 3, "budget_epochs": 0}, trials=3, epochs=9) is None
    assert extension_room({"num_samples": 30, "budget_epochs": 12}, trials=6, epochs=13) is None
