"""load_dataset: padding side, lengths, normalisation, tokens and their cache, the real MOSI file."""

from __future__ import annotations

import json
import pickle
import string
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmsa_core.data import MSADataset, SplitArrays, load_dataset, make_synthetic
from mmsa_core.data import tokenize as tokenize_mod
from mmsa_core.models.text_encoder import load_tokenizer, resolve_text_encoder

SPLITS = ("train", "valid", "test")
REPO = Path(__file__).resolve().parents[2]


def _dump(tmp_path: Path, raw: dict, name: str) -> Path:
    path = tmp_path / f"{name}.pkl"
    path.write_bytes(pickle.dumps(raw, protocol=4))
    return path


def _left_pad(raw: dict, step: int = 1) -> dict:
    """Move the valid frames of every ``step``-th sample to the end (left padding), as some releases store them."""
    out = {s: dict(f) for s, f in raw.items()}
    for split in SPLITS:
        for key in ("audio", "vision"):
            x = out[split][key].copy()
            lens = np.asarray(out[split][f"{key}_lengths"])
            for i in range(0, len(x), step):
                x[i] = np.roll(x[i], x.shape[1] - lens[i], axis=0)
            out[split][key] = x
    return out


def _without_lengths(raw: dict) -> dict:
    return {s: {k: v for k, v in f.items() if not k.endswith("_lengths")} for s, f in raw.items()}


def _assert_same_streams(a: MSADataset, b: MSADataset) -> None:
    for split in SPLITS:
        for key in ("audio", "audio_lengths", "vision", "vision_lengths", "labels", "text_ids"):
            np.testing.assert_array_equal(getattr(a.splits[split], key), getattr(b.splits[split], key),
                                          err_msg=f"{split}/{key}")


def test_padding_side_detected_per_sample(tmp_path):
    raw = make_synthetic("mosi", seed=2, sizes=(24, 8, 8))
    right = load_dataset(_dump(tmp_path, raw, "right"))
    left = load_dataset(_dump(tmp_path, _left_pad(raw), "left"))
    mixed = load_dataset(_dump(tmp_path, _left_pad(raw, step=2), "mixed"))
    _assert_same_streams(right, left)
    _assert_same_streams(right, mixed)
    # without length keys: lengths from the all-zero frames, either side
    for name, r in (("right_nolen", raw), ("left_nolen", _left_pad(raw))):
        derived = load_dataset(_dump(tmp_path, _without_lengths(r), name))
        _assert_same_streams(right, derived)
    s = right.splits["train"]
    np.testing.assert_array_equal(s.audio_lengths, raw["train"]["audio_lengths"])
    valid = np.arange(s.audio.shape[1])[None, :] < s.audio_lengths[:, None]
    assert (s.audio[~valid] == 0).all() and (np.abs(s.audio[valid]).sum(axis=-1) > 0).all()


def test_features_finite_and_normalised_with_train_statistics():
    raw = make_synthetic("mosi", seed=4, sizes=(200, 50, 50))
    assert np.isneginf(raw["train"]["audio"]).any()  # the generator writes COVAREP-style -inf
    data = load_dataset("synthetic-mosi", seed=4, sizes=(200, 50, 50))
    for key in ("audio", "vision"):
        tr = data.splits["train"]
        x, lens = getattr(tr, key), getattr(tr, f"{key}_lengths")
        valid = np.arange(x.shape[1])[None, :] < lens[:, None]
        frames = x[valid]
        np.testing.assert_allclose(frames.mean(axis=0), 0.0, atol=1e-4)
        np.testing.assert_allclose(frames.std(axis=0), 1.0, atol=1e-3)
        for split in SPLITS:
            assert np.isfinite(getattr(data.splits[split], key)).all()
    raw_scale = load_dataset("synthetic-mosi", seed=4, sizes=(200, 50, 50), normalize=False)
    expected = np.where(np.isneginf(raw["valid"]["vision"]), 0, raw["valid"]["vision"])
    np.testing.assert_array_equal(raw_scale.splits["valid"].vision, expected)


def test_dataset_object():
    data = load_dataset("synthetic-mosi", seed=0, sizes=(10, 0, 7))
    assert isinstance(data, MSADataset) and data.name == "synthetic-mosi" and data.source == "synthetic-mosi"
    assert data.sizes == {"train": 10, "valid": 1536, "test": 7}  # 0 = the default size
    assert (data.audio_dim, data.vision_dim, data.text_len) == (5, 20, 50)
    s = data.splits["test"]
    assert isinstance(s, SplitArrays) and len(s) == 7
    for key, dtype in (("text_ids", np.int64), ("text_mask", np.int64), ("text_type", np.int64),
                       ("audio", np.float32), ("vision", np.float32), ("audio_lengths", np.int64),
                       ("vision_lengths", np.int64), ("labels", np.float32)):
        assert getattr(s, key).dtype == dtype, key
        assert not getattr(s, key).flags.writeable, key  # shared between trials: read-only
    assert s.ids.dtype.kind == "U" and s.raw_text.dtype.kind == "U"
    assert s.ids[0].startswith("synthvid") and (s.text_ids[:, 0] == 101).all()
    assert load_dataset("synthetic-mosei", sizes=(4, 4, 4)).name == "synthetic-mosei"
    with pytest.raises(FileNotFoundError, match="synthetic-mosi"):
        load_dataset("synthetic-imdb")


def test_text_length_fit_matches_tokenizer():
    tok = load_tokenizer(resolve_text_encoder("minilm"))
    for length in (8, 64):
        data = load_dataset("synthetic-mosi", seed=3, sizes=(30, 4, 4), max_text_len=length)
        s = data.splits["train"]
        enc = tok(list(s.raw_text), padding="max_length", truncation=True, max_length=length)
        np.testing.assert_array_equal(s.text_ids, np.asarray(enc["input_ids"]))
        np.testing.assert_array_equal(s.text_mask, np.asarray(enc["attention_mask"]))
        assert data.text_len == length
    short = load_dataset("synthetic-mosi", seed=3, sizes=(30, 4, 4), max_text_len=8).splits["train"]
    assert (short.text_ids[short.text_mask.sum(1) == 8, 7] == 102).all()  # truncated ones end in [SEP]


def test_raw_text_tokenized_once_and_cached(tmp_path, monkeypatch):
    raw = make_synthetic("mosi", seed=7, sizes=(16, 8, 8))
    no_tokens = {s: {k: v for k, v in f.items() if k != "text_bert"} for s, f in raw.items()}
    path = _dump(tmp_path, no_tokens, "no_text_bert")
    cache = tmp_path / "cache"
    calls = []
    real_tokenize = tokenize_mod.tokenize_texts
    monkeypatch.setattr(tokenize_mod, "tokenize_texts",
                        lambda *a, **k: calls.append(1) or real_tokenize(*a, **k))
    with_tokens = load_dataset(_dump(tmp_path, raw, "with_text_bert"), cache_dir=cache)
    assert not calls and not (cache / "tokens").exists()  # text_bert reused: nothing tokenized
    first = load_dataset(path, cache_dir=cache)
    assert len(calls) == 3 and len(list((cache / "tokens").glob("*.npz"))) == 1
    # the same tokenizer as text_bert's: identical ids
    for split in SPLITS:
        np.testing.assert_array_equal(first.splits[split].text_ids, raw[split]["text_bert"][:, 0].astype(np.int64))
    _assert_same_streams(first, with_tokens)
    second = load_dataset(path, cache_dir=cache)
    assert len(calls) == 3, "the cache was not reused"
    _assert_same_streams(first, second)
    load_dataset(path, cache_dir=cache, max_text_len=20)  # another length: another cache entry
    assert len(calls) == 6 and len(list((cache / "tokens").glob("*.npz"))) == 2


def test_other_vocabulary_tokenizes_raw_text(tmp_path):
    enc_dir = tmp_path / "char_bert"
    enc_dir.mkdir()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *string.ascii_lowercase,
             *("##" + c for c in string.ascii_lowercase)]
    (enc_dir / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (enc_dir / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": len(vocab)}))
    (enc_dir / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True,
                                                               "tokenizer_class": "BertTokenizer"}))
    data = load_dataset("synthetic-mosi", sizes=(6, 3, 3), text_encoder=str(enc_dir), cache_dir=tmp_path / "c")
    s = data.splits["train"]
    assert (s.text_ids[:, 0] == 2).all() and s.text_ids.max() < len(vocab)  # its own ids, not text_bert's
    assert s.text_mask.sum(1).min() > 10  # one token per character


def test_sizes_cut_files(tmp_path):
    raw = make_synthetic("mosi", seed=8, sizes=(20, 10, 10))
    data = load_dataset(_dump(tmp_path, raw, "cut"), sizes=(5, 0, 3))
    assert data.sizes == {"train": 5, "valid": 10, "test": 3} and data.name == "cut"
    np.testing.assert_array_equal(data.splits["train"].labels, raw["train"]["regression_labels"][:5])


def test_real_mosi_file(shared_data_dir):
    path = shared_data_dir / "mosi_utterance" / "mosi_utt.pkl"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    data = load_dataset(path)
    assert data.name == "mosi_utt" and data.source == str(path)
    assert data.sizes == {"train": 1239, "valid": 208, "test": 752}
    assert (data.audio_dim, data.vision_dim, data.text_len) == (73, 100, 50)
    tr = data.splits["train"]
    assert (tr.audio_lengths == 1).all() and (tr.vision_lengths == 1).all()
    for split in SPLITS:
        s = data.splits[split]
        assert np.isfinite(s.audio).all() and np.isfinite(s.vision).all()
        assert s.labels.min() >= -3 and s.labels.max() <= 3
        assert (s.text_ids[:, 0] == 101).all() and "$_$" in s.ids[0]
    assert np.abs(tr.audio[:, 0].mean(axis=0)).max() < 1e-3  # raw openSMILE scale normalised
    stds = tr.audio[:, 0].std(axis=0)
    assert np.all((np.abs(stds - 1) < 1e-3) | (stds == 0))


def test_import_is_light():
    code = ("import sys, mmsa_core.data; "
            "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; "
            "assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
