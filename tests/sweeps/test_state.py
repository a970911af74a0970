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
