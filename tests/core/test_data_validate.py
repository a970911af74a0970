"""One message listing every data problem, each naming file, split, key and shape (validate.py)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from mmsa_core.data import DataValidationError, load_dataset, make_synthetic
from mmsa_core.data.validate import validate_dataset, validate_raw

SRC = "/data/aligned_50.pkl"


@pytest.fixture()
def raw():
    return make_synthetic("mosi", seed=1, sizes=(12, 6, 6))


def _problems(raw, **kwargs) -> list[str]:
    with pytest.raises(DataValidationError) as info:
        validate_raw(raw, source=SRC, **kwargs)
    err = info.value
    assert isinstance(err, ValueError)
    lines = str(err).splitlines()
    assert lines[0].startswith(SRC) and len(lines) == len(err.problems) + 1
    return err.problems


def _one(problems: list[str], *needles: str) -> str:
    hits = [p for p in problems if all(n in p for n in needles)]
    assert len(hits) == 1, (needles, problems)
    assert hits[0].startswith(SRC)
    return hits[0]


def test_valid_data_passes(raw):
    validate_raw(raw, source=SRC, expected_dims={"audio": 5, "vision": 20})


def test_wrong_feature_width(raw):
    problems = _problems(raw, expected_dims={"audio": 6, "vision": 20})
    assert len(problems) == 3  # one per split
    line = _one(problems, "split 'train'", "key 'audio'")
    assert "(12, 50, 5)" in line and "expected 6" in line


def test_missing_split(raw):
    del raw["valid"]
    line = _one(_problems(raw), "split 'valid'")
    assert "missing" in line and "train" in line


def test_nan_label(raw):
    raw["test"]["regression_labels"][[3, 5]] = np.nan
    line = _one(_problems(raw), "split 'test'", "key 'regression_labels'")
    assert "2 NaN" in line and "[3, 5]" in line and "(6,)" in line


def test_inconsistent_n(raw):
    raw["train"]["audio"] = raw["train"]["audio"][:-1]
    line = _one(_problems(raw), "split 'train'", "key 'audio'")
    assert "N=11" in line and "(11, 50, 5)" in line and "N=12" in line


def test_every_problem_in_one_message(raw):
    raw["train"]["vision"] = raw["train"]["vision"][..., :19]  # width differs between splits
    raw["valid"]["audio_lengths"][2] = 51  # above the padded length
    raw["valid"]["vision_lengths"][0] = -1
    raw["test"]["audio"][4, 0, 0] = np.nan
    raw["test"]["audio"][1, 0, 1] = -np.inf  # allowed: set to 0 when loading
    raw["test"]["text_bert"] = raw["test"]["text_bert"][:, 0]  # wrong ndim
    del raw["train"]["raw_text"]
    problems = _problems(raw)
    assert "train 19" in _one(problems, "key 'vision'", "differs between splits")
    assert "padded length 50" in _one(problems, "split 'valid'", "key 'audio_lengths'")
    assert "negative" in _one(problems, "split 'valid'", "key 'vision_lengths'")
    assert "[4]" in _one(problems, "split 'test'", "key 'audio'", "NaN")
    assert "(6, 50)" in _one(problems, "split 'test'", "key 'text_bert'")
    assert "missing" in _one(problems, "split 'train'", "key 'raw_text'")
    assert len(problems) == 6, problems


def test_not_a_dict_and_wrong_ndim():
    with pytest.raises(DataValidationError, match="top level is list"):
        validate_raw([1, 2], source=SRC)
    raw = make_synthetic("mosi", seed=1, sizes=(4, 4, 4))
    raw["train"]["audio"] = raw["train"]["audio"][:, 0]
    assert "ndim 2" in _one(_problems(raw), "split 'train'", "key 'audio'")
    with pytest.raises(ValueError, match="unknown key"):
        validate_raw(raw, source=SRC, expected_dims={"text": 768})


def test_load_dataset_names_the_file(tmp_path, raw):
    raw["train"]["regression_labels"][0] = np.inf
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(raw))
    with pytest.raises(DataValidationError) as info:
        load_dataset(path)
    assert f"{path}: split 'train': key 'regression_labels'" in str(info.value)


def test_validate_dataset_against_expected_widths():
    data = load_dataset("synthetic-mosi", sizes=(8, 4, 4))
    validate_dataset(data, expected_dims={"audio": 5, "vision": 20}, text_len=50)
    with pytest.raises(DataValidationError) as info:
        validate_dataset(data, expected_dims={"audio": 74, "vision": 35})
    assert len(info.value.problems) == 6
    assert "feature width 5, expected 74" in str(info.value)
