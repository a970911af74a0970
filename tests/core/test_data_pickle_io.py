"""Restricted unpickling, size cap, truncated files, conversion to npz + JSON (mmsa_core.data.pickle_io)."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmsa_core.data import DataFileError, UnsafePickleError, convert_to_npz, load_dataset, make_synthetic
from mmsa_core.data import pickle_io
from mmsa_core.data.pickle_io import read_converted, read_pickle

REPO = Path(__file__).resolve().parents[2]
SIZES = (12, 6, 6)


@pytest.fixture(scope="module")
def small_raw():
    raw = make_synthetic("mosi", seed=5, sizes=SIZES)
    raw["train"]["extra_set"] = {1, 2}  # a set: Python-2-style `__builtin__.set` under protocol 2
    return raw


def _assert_raw_equal(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for split in a:
        assert sorted(a[split]) == sorted(b[split]), split
        for key, value in a[split].items():
            other = b[split][key]
            if isinstance(value, np.ndarray):
                assert isinstance(other, np.ndarray) and other.dtype == value.dtype, key
                np.testing.assert_array_equal(other, value, err_msg=key)
            else:
                assert other == value, key


def _same_dataset(a, b) -> None:
    assert a.name == b.name and a.sizes == b.sizes
    for split in a.splits:
        for key in ("text_ids", "text_mask", "text_type", "audio", "audio_lengths", "vision",
                    "vision_lengths", "labels", "ids", "raw_text"):
            np.testing.assert_array_equal(getattr(a.splits[split], key), getattr(b.splits[split], key),
                                          err_msg=f"{split}/{key}")


class _Reduce:
    """Pickles as ``func(*args)``: what a malicious file does."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("func, names", [
    (os.system, ("posix.system", "os.system", "nt.system")),
    (eval, ("builtins.eval",)),
    (subprocess.call, ("subprocess.call",)),
])
def test_refuses_globals_outside_the_allow_list(tmp_path, func, names):
    marker = tmp_path / "pwned"
    command = f"open({str(marker)!r}, 'w')" if func is eval else (
        ["touch", str(marker)] if func is subprocess.call else f"touch {marker}")
    path = tmp_path / "evil.pkl"
    payload = {"train": {"id": ["a$_$1"], "audio": _Reduce(func, (command,))}}
    path.write_bytes(pickle.dumps(payload, protocol=4))
    with pytest.raises(UnsafePickleError) as info:
        read_pickle(path)
    message = str(info.value)
    assert any(n in message for n in names), message
    assert str(path) in message
    with pytest.raises(UnsafePickleError):
        load_dataset(path)
    assert not marker.exists(), "the pickle's payload ran"


def test_numpy1_spelling_and_protocols(tmp_path, small_raw):
    for protocol in (2, 5):
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps(small_raw, protocol=protocol))
        _assert_raw_equal(read_pickle(path), small_raw)
    # a file written under NumPy 1.x names numpy.core.multiarray (protocol 2: text GLOBAL opcodes)
    data = pickle.dumps(small_raw, protocol=2)
    assert b"numpy._core.multiarray\n_reconstruct" in data
    old = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy._core" not in old
    path = tmp_path / "numpy1.pkl"
    path.write_bytes(old)
    _assert_raw_equal(read_pickle(path), small_raw)
    assert load_dataset(path).sizes == dict(zip(("train", "valid", "test"), SIZES))


def test_truncated_empty_and_oversized_files(tmp_path, small_raw):
    data = pickle.dumps(small_raw, protocol=5)
    path = tmp_path / "cut.pkl"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFileError, match="truncated") as info:
        read_pickle(path)
    assert str(path) in str(info.value)
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    with pytest.raises(DataFileError) as info:
        load_dataset(empty)
    assert str(empty) in str(info.value)
    whole = tmp_path / "whole.pkl"
    whole.write_bytes(data)
    with pytest.raises(DataFileError, match="size cap") as info:
        read_pickle(whole, max_bytes=1000)
    assert str(whole) in str(info.value)


def test_conversion_round_trip_and_preference(tmp_path, small_raw, monkeypatch):
    pkl = tmp_path / "small.pkl"
    pkl.write_bytes(pickle.dumps(small_raw, protocol=5))
    from_pickle = load_dataset(pkl)
    with pytest.warns(UserWarning, match="extra_set"):  # an unused field of no array type
        out = convert_to_npz(pkl)
    assert out == tmp_path / "small.mmsa"
    assert {p.name for p in out.iterdir()} == {"meta.json", *(f"{s}.{e}" for s in ("train", "valid", "test")
                                                              for e in ("npz", "json"))}
    for split in ("train", "valid", "test"):  # readable without pickle support
        with np.load(out / f"{split}.npz", allow_pickle=False) as npz:
            assert "audio" in npz.files
    raw_back, meta = read_converted(out)
    assert meta["name"] == "small"
    assert meta["skipped"] == ["train/extra_set"]
    assert set(raw_back["train"]) == set(small_raw["train"]) - {"extra_set"}
    from_dir = load_dataset(out)
    _same_dataset(from_dir, from_pickle)

    # next to the pickle, the converted form is read instead of the pickle
    def no_pickle(*args, **kwargs):
        raise AssertionError("the pickle was read although its conversion is present")

    monkeypatch.setattr(pickle_io, "read_pickle", no_pickle)
    preferred = load_dataset(pkl)
    _same_dataset(preferred, from_pickle)
    assert preferred.name == "small"
    monkeypatch.undo()

    # a changed pickle makes the conversion stale: warn and read the pickle
    changed = make_synthetic("mosi", seed=6, sizes=SIZES)
    pkl.write_bytes(pickle.dumps(changed, protocol=5))
    with pytest.warns(UserWarning, match="different version"):
        fresh = load_dataset(pkl)
    np.testing.assert_array_equal(fresh.splits["train"].labels, changed["train"]["regression_labels"])


def test_convert_cli(tmp_path, small_raw):
    pkl = tmp_path / "cli.pkl"
    pkl.write_bytes(pickle.dumps({s: {k: v for k, v in f.items() if k != "extra_set"}
                                  for s, f in small_raw.items()}, protocol=4))
    out_dir = tmp_path / "converted"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-m", "mmsa_core.data.convert", str(pkl), str(out_dir)],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (out_dir / "cli.mmsa" / "meta.json").is_file()
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(_Reduce(os.system, ("true",))))
    result = subprocess.run([sys.executable, "-m", "mmsa_core.data.convert", str(evil)],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert result.returncode == 1 and "system" in result.stderr


def test_real_mosi_conversion_round_trip(tmp_path, shared_data_dir):
    real = shared_data_dir / "mosi_utterance" / "mosi_utt.pkl"
    if not real.is_file():
        pytest.skip(f"{real} not present")
    out = convert_to_npz(real, tmp_path)
    assert out == tmp_path / "mosi_utt.mmsa"
    _assert_raw_equal({s: {k: (np.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in f.items()}
                       for s, f in read_converted(out)[0].items()},
                      {s: {k: (v if isinstance(v, np.ndarray) or isinstance(v[0], str) else np.asarray(v))
                           for k, v in f.items()} for s, f in read_pickle(real).items()})
    _same_dataset(load_dataset(out), load_dataset(real))
