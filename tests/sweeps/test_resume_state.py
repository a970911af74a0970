"""Truncated Tune state files (a driver killed mid-upload) are put back from complete copies."""

from __future__ import annotations

import json
import os
import pickle

import pytest

from sweeps.resume_state import (ResumeStateError, StateBackup, backup_dir, is_complete,
                                 is_state_file, repair)

S1, S2 = "2026-11-26_01-59-11", "2026-11-26_01-59-31"


def _experiment(tmp_path, sessions=(S1,)):
    exp = tmp_path / "search"
    exp.mkdir()
    files = {"tuner.pkl": pickle.dumps({"trainable": "fn", "space": list(range(50))})}
    for i, ts in enumerate(sessions):
        files[f"experiment_state-{ts}.json"] = json.dumps({"trials": list(range(i + 3))}).encode()
        files[f"searcher-state-{ts}.pkl"] = pickle.dumps({"study": "s", "n": i})
        # Tune writes this one as a pickle despite its name
        files[f"search_gen_state-{ts}.json"] = pickle.dumps({"gen": i, "counter": 3})
    for name, data in files.items():
        (exp / name).write_bytes(data)
    (exp / ".validate_storage_marker").write_bytes(b"")
    (exp / "trial_0").mkdir()
    return exp, files


def test_completeness_is_judged_without_unpickling():
    data = pickle.dumps({"a": list(range(1000))}, protocol=5)
    assert is_complete(data)
    assert not is_complete(b"")
    assert not is_complete(data[: len(data) // 2])
    assert not is_complete(data[:-1])  # everything but STOP
    doc = json.dumps({"trials": [1, 2, 3]}).encode()
    assert is_complete(doc)
    assert not is_complete(doc[:-1])
    assert not is_complete(b"")
    assert not is_complete(b"\x80\x05garbage")


def test_state_files_are_the_ones_tune_syncs():
    assert is_state_file("tuner.pkl")
    assert is_state_file(f"experiment_state-{S1}.json")
    assert is_state_file(f"searcher-state-{S1}.pkl")
    assert is_state_file(f"basic-variant-state-{S1}.json")
    assert not is_state_file(".validate_storage_marker")
    assert not is_state_file("result.json")


def test_backup_copies_complete_files_once_and_skips_half_written_ones(tmp_path):
    exp, files = _experiment(tmp_path)
    keep = StateBackup(str(exp))
    assert sorted(keep()) == sorted(files)
    assert keep() == []  # unchanged files are not copied again
    copies = backup_dir(str(exp))
    assert copies == str(tmp_path / ".search.resume-state")  # beside, not inside, Tune's dir
    for name, data in files.items():
        assert open(os.path.join(copies, name), "rb").read() == data

    # a newer complete version replaces the copy; a half-written one does not
    newer = json.dumps({"trials": list(range(9))}).encode()
    name = f"experiment_state-{S1}.json"
    (exp / name).write_bytes(newer)
    assert keep() == [name]
    (exp / name).write_bytes(newer[:10])
    assert keep() == []
    assert open(os.path.join(copies, name), "rb").read() == newer


def test_repair_restores_truncated_files_from_their_copies(tmp_path):
    exp, files = _experiment(tmp_path)
    StateBackup(str(exp))()
    (exp / "tuner.pkl").write_bytes(b"")  # what CI saw
    half = f"searcher-state-{S1}.pkl"
    (exp / half).write_bytes(files[half][:7])
    assert sorted(repair(str(exp))) == sorted(["tuner.pkl", half])
    for name, data in files.items():
        assert (exp / name).read_bytes() == data
    assert repair(str(exp)) == []  # nothing else touched
    assert (exp / ".validate_storage_marker").exists() and (exp / "trial_0").is_dir()


def test_a_session_truncated_before_its_first_copy_is_dropped_for_the_one_before(tmp_path):
    exp, files = _experiment(tmp_path, sessions=(S1,))
    StateBackup(str(exp))()
    # the next session wrote its files, then its experiment state was cut mid-upload
    (exp / f"experiment_state-{S2}.json").write_bytes(b'{"trials": [1, 2')
    (exp / f"searcher-state-{S2}.pkl").write_bytes(pickle.dumps({"n": 5}))
    removed = repair(str(exp))
    assert sorted(removed) == sorted([f"experiment_state-{S2}.json", f"searcher-state-{S2}.pkl"])
    assert sorted(p.name for p in exp.iterdir() if p.is_file()) == sorted(
        [*files, ".validate_storage_marker"])


def test_a_truncated_tuner_file_without_a_copy_is_a_clear_error(tmp_path):
    exp, _ = _experiment(tmp_path)
    (exp / "tuner.pkl").write_bytes(b"\x80\x05")
    with pytest.raises(ResumeStateError, match=r"tuner\.pkl is truncated \(2 bytes\).*move"):
        repair(str(exp))


def test_missing_experiment_dir_is_nothing_to_repair(tmp_path):
    assert repair(str(tmp_path / "absent")) == []
    assert StateBackup(str(tmp_path / "absent"))() == []
