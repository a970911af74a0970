"""Truncated Tune state files (a driver killed mid-upload) are put back from a consistent snapshot."""

from __future__ import annotations

import json
import os
import pickle

import pytest

from sweeps.resume_state import (ResumeStateError, StateBackup, backup_dir, is_complete,
                                 is_state_file, load_snapshot, repair, snapshot_dir)

S1, S2 = "2026-11-26_01-59-11", "2026-11-26_01-59-31"


def _state(step: int, sessions=(S1,)) -> dict[str, bytes]:
    files = {}
    for i, ts in enumerate(sessions):
        files[f"experiment_state-{ts}.json"] = json.dumps({"trials": list(range(i + step))}).encode()
        files[f"searcher-state-{ts}.pkl"] = pickle.dumps({"asked": i + step})
        # Tune writes this one as a pickle despite its name
        files[f"search_gen_state-{ts}.json"] = pickle.dumps({"counter": i + step})
    return files


def _write(folder, files):
    folder.mkdir(exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


TUNER = pickle.dumps({"trainable": "fn", "space": list(range(50))})


@pytest.fixture
def exp(tmp_path):
    """A storage folder as a fresh Tuner leaves it."""
    folder = tmp_path / "search"
    _write(folder, {"tuner.pkl": TUNER})
    (folder / ".validate_storage_marker").write_bytes(b"")
    (folder / "trial_0").mkdir()
    return folder


def _snapshot_now(exp) -> StateBackup:
    keep = StateBackup(str(exp))
    keep()  # first sight
    assert keep() is True  # settled: snapshot
    return keep


def test_completeness_is_judged_by_content_without_unpickling():
    data = pickle.dumps({"a": list(range(1000))}, protocol=5)
    assert is_complete(data)
    assert not is_complete(b"")
    assert not is_complete(data[: len(data) // 2])
    assert not is_complete(data[:-1])  # everything but STOP
    assert not is_complete(b"\x80\x05garbage")
    doc = json.dumps({"trials": [1, 2, 3]}).encode()
    assert is_complete(doc)
    assert not is_complete(doc[:-1])


def test_state_files_are_the_ones_tune_syncs():
    assert is_state_file("tuner.pkl")
    assert is_state_file(f"experiment_state-{S1}.json")
    assert is_state_file(f"searcher-state-{S1}.pkl")
    assert is_state_file(f"basic-variant-state-{S1}.json")
    assert not is_state_file(".validate_storage_marker")
    assert not is_state_file("result.json")


def test_a_set_is_snapshotted_once_it_has_settled_and_is_whole(exp):
    keep = StateBackup(str(exp))
    _write(exp, _state(1))
    assert keep() is False  # just changed: an upload may be half-way
    assert keep() is True  # one step of quiet
    assert backup_dir(str(exp)) == str(exp.parent / ".search.resume-state")  # beside Tune's dir
    assert snapshot_dir(str(exp)).startswith(backup_dir(str(exp)))
    assert load_snapshot(str(exp)) == {**_state(1), "tuner.pkl": TUNER}
    assert keep() is False  # unchanged: no new snapshot

    # an upload caught half-way, then finished: only the finished set is kept
    _write(exp, {f"experiment_state-{S1}.json": _state(2)[f"experiment_state-{S1}.json"],
                 f"searcher-state-{S1}.pkl": _state(2)[f"searcher-state-{S1}.pkl"][:5]})
    assert keep() is False
    assert keep() is False  # settled but truncated: never snapshotted
    assert load_snapshot(str(exp)) == {**_state(1), "tuner.pkl": TUNER}
    _write(exp, _state(2))
    assert keep() is False
    assert keep() is True
    assert load_snapshot(str(exp)) == {**_state(2), "tuner.pkl": TUNER}
    assert sorted(os.listdir(backup_dir(str(exp)))) == ["2", "CURRENT"]  # older sets removed


def test_repair_puts_the_whole_snapshot_back(exp):
    _write(exp, _state(2))
    _snapshot_now(exp)
    # storage: the upload of step 2 was cut - experiment state new, searcher state half-written,
    # search generator state still from step 1, tuner.pkl emptied (what CI saw)
    uploaded = _state(2)
    _write(exp, {**_state(1), f"experiment_state-{S1}.json": uploaded[f"experiment_state-{S1}.json"],
                 f"searcher-state-{S1}.pkl": uploaded[f"searcher-state-{S1}.pkl"][:9],
                 "tuner.pkl": b""})
    changed = repair(str(exp))
    assert sorted(changed) == sorted(["tuner.pkl", f"searcher-state-{S1}.pkl",
                                      f"search_gen_state-{S1}.json"])
    for name, data in {**_state(2), "tuner.pkl": TUNER}.items():
        assert (exp / name).read_bytes() == data, name
    assert repair(str(exp)) == []  # whole files: nothing to do
    assert (exp / ".validate_storage_marker").exists() and (exp / "trial_0").is_dir()


def test_whole_files_are_left_alone_even_when_a_snapshot_differs(exp):
    _write(exp, _state(1))
    _snapshot_now(exp)
    _write(exp, _state(3))  # a newer, whole upload
    assert repair(str(exp)) == []
    (exp / "tuner.pkl").write_bytes(b"")  # only tuner.pkl cut: its exact copy goes back, alone
    assert repair(str(exp)) == ["tuner.pkl"]
    assert (exp / "tuner.pkl").read_bytes() == TUNER
    for name, data in _state(3).items():
        assert (exp / name).read_bytes() == data


def test_a_session_truncated_before_its_first_snapshot_is_dropped(exp):
    _write(exp, _state(1))
    _snapshot_now(exp)
    # the next session wrote its files, then was killed mid-upload before any snapshot of them
    (exp / f"experiment_state-{S2}.json").write_bytes(b'{"trials": [1, 2')
    (exp / f"searcher-state-{S2}.pkl").write_bytes(pickle.dumps({"n": 5}))
    removed = repair(str(exp))
    assert sorted(removed) == sorted([f"experiment_state-{S2}.json", f"searcher-state-{S2}.pkl"])
    assert sorted(p.name for p in exp.iterdir() if p.is_file()) == sorted(
        [*_state(1), "tuner.pkl", ".validate_storage_marker"])


def test_a_truncated_tuner_file_without_a_snapshot_is_a_clear_error(exp):
    (exp / "tuner.pkl").write_bytes(b"\x80\x05")
    with pytest.raises(ResumeStateError, match=r"tuner\.pkl is truncated \(2 bytes\).*move"):
        repair(str(exp))


def test_missing_folders_are_nothing_to_do(tmp_path):
    assert repair(str(tmp_path / "absent")) == []
    keep = StateBackup(str(tmp_path / "absent"))
    assert keep() is False and keep() is False
    assert load_snapshot(str(tmp_path / "absent")) == {}
