"""The synthetic generator: MMSA layout, determinism, label edge cases and a real multimodal signal."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from mmsa_core.data import load_dataset, make_synthetic
from mmsa_core.data.synthetic import SPLIT_SIZES
from mmsa_core.data.validate import validate_raw

SPLITS = ("train", "valid", "test")


def _flat(raw: dict) -> dict:
    return {f"{s}/{k}": np.asarray(v) for s, f in raw.items() for k, v in f.items()}


def test_deterministic_per_seed():
    a, b = make_synthetic("mosi", seed=11, sizes=(40, 10, 10)), make_synthetic("mosi", seed=11, sizes=(40, 10, 10))
    c = make_synthetic("mosi", seed=12, sizes=(40, 10, 10))
    fa, fb, fc = _flat(a), _flat(b), _flat(c)
    assert fa.keys() == fb.keys() == fc.keys()
    for key in fa:
        np.testing.assert_array_equal(fa[key], fb[key], err_msg=key)
    for key in ("train/audio", "train/vision", "train/regression_labels", "test/raw_text"):
        assert not np.array_equal(fa[key], fc[key]), key
    # one split's size never changes another split's samples
    d = make_synthetic("mosi", seed=11, sizes=(40, 10, 25))
    np.testing.assert_array_equal(d["train"]["audio"], a["train"]["audio"])


@pytest.mark.parametrize("kind, widths", [("mosi", (5, 20)), ("mosei", (74, 35))])
def test_layout_and_shapes(kind, widths):
    raw = make_synthetic(kind, seed=0, sizes=(30, 12, 9))
    validate_raw(raw, source=kind, expected_dims={"audio": widths[0], "vision": widths[1]})
    for split, n in zip(SPLITS, (30, 12, 9)):
        f = raw[split]
        assert f["audio"].shape == (n, 50, widths[0]) and f["vision"].shape == (n, 50, widths[1])
        assert f["text_bert"].shape == (n, 3, 50) and f["regression_labels"].shape == (n,)
        assert all(len(f[k]) == n for k in ("id", "raw_text", "annotations", "classification_labels",
                                            "audio_lengths", "vision_lengths"))
        assert all(re.fullmatch(r"synthvid\d+\$_\$\d+", i) for i in f["id"])
        lens = np.asarray(f["audio_lengths"])
        assert lens.min() >= 1 and lens.max() <= 50
    ids = [i for s in SPLITS for i in raw[s]["id"]]
    assert len(set(ids)) == len(ids)
    videos = [{i.split("$_$")[0] for i in raw[s]["id"]} for s in SPLITS]
    assert not (videos[0] & videos[1]) and not (videos[0] & videos[2])  # speaker-independent splits


def test_default_sizes_lengths_and_speed():
    start = time.perf_counter()
    raw = make_synthetic("mosi", seed=0)
    assert time.perf_counter() - start < 2.0
    assert tuple(len(raw[s]["id"]) for s in SPLITS) == SPLIT_SIZES["mosi"] == (1284, 1536, 1024)
    assert SPLIT_SIZES["mosei"] == (16326, 1871, 4659)
    lens = np.concatenate([raw[s]["audio_lengths"] for s in SPLITS])
    assert 0.1 < (lens == 50).mean() < 0.5 and lens.min() < 25  # some padding, some full
    unaligned = make_synthetic("mosi", seed=0, sizes=(8, 2, 2), lengths=(120, 90))
    assert unaligned["train"]["audio"].shape[1:] == (120, 5) and unaligned["train"]["vision"].shape[1:] == (90, 20)
    assert max(unaligned["train"]["vision_lengths"]) <= 90
    with pytest.raises(ValueError, match="kind"):
        make_synthetic("sims")


def test_labels_like_mosi():
    raw = make_synthetic("mosi", seed=0)
    y = np.concatenate([raw[s]["regression_labels"] for s in SPLITS])
    assert y.dtype == np.float32 and y.min() >= -3 and y.max() <= 3
    assert (y == 0).sum() > 20 and (np.abs(y) % 1 == 0.5).sum() > 20  # metric edge cases occur
    assert 1.1 < y.std() < 1.7
    quantised = np.zeros(y.shape, dtype=bool)
    for k in (3, 4, 5):  # means of 3-5 integer votes
        quantised |= np.abs(y * k - np.round(y * k)) < 1e-4
    assert quantised.all()
    tr = raw["train"]
    y_tr = tr["regression_labels"]
    expected = np.where(y_tr > 0, "Positive", np.where(y_tr < 0, "Negative", "Neutral"))
    assert list(expected) == tr["annotations"]


def test_text_bert_is_the_uncased_tokenizer_output():
    from mmsa_core.models.text_encoder import load_tokenizer, resolve_text_encoder

    raw = make_synthetic("mosi", seed=9, sizes=(200, 2, 2))
    texts = raw["train"]["raw_text"]
    assert all(t == t.lower() and t.strip() for t in texts)
    assert any(" not " in f" {t} " for t in texts) and any("really" in t for t in texts)
    tok = load_tokenizer(resolve_text_encoder("minilm"))
    enc = tok(texts, padding="max_length", truncation=True, max_length=50)
    np.testing.assert_array_equal(raw["train"]["text_bert"][:, 0], np.asarray(enc["input_ids"]))
    np.testing.assert_array_equal(raw["train"]["text_bert"][:, 1], np.asarray(enc["attention_mask"]))


def _probe_features(split, vocab: dict[str, int], multimodal: bool) -> np.ndarray:
    bow = np.zeros((len(split), len(vocab)))
    for i, text in enumerate(split.raw_text):
        for w in text.split():
            if w in vocab:
                bow[i, vocab[w]] += 1
    cols = [bow, np.ones((len(split), 1))]
    if multimodal:
        pooled = []
        for key in ("audio", "vision"):
            x, lens = getattr(split, key), getattr(split, f"{key}_lengths")
            valid = np.arange(x.shape[1])[None, :] < lens[:, None]
            pooled.append((x * valid[:, :, None]).sum(axis=1) / np.maximum(lens, 1)[:, None])
        a, v = pooled
        cols += [a, v, (a[:, :, None] * v[:, None, :]).reshape(len(split), -1)]
    return np.concatenate(cols, axis=1)


def test_signal_needs_all_modalities():
    data = load_dataset("synthetic-mosi", seed=0)
    train, test = data.splits["train"], data.splits["test"]
    vocab = {w: i for i, w in enumerate(sorted({w for t in train.raw_text for w in t.split()}))}
    mae, corr = {}, {}
    for name in ("text", "text+a+v", "text+a+v+a*v"):
        x, xt = (_probe_features(s, vocab, multimodal=name != "text") for s in (train, test))
        if name == "text+a+v":  # drop the a*v product columns: no interaction term
            x, xt = x[:, :-100], xt[:, :-100]
        w = np.linalg.solve(x.T @ x + np.eye(x.shape[1]), x.T @ train.labels)  # ridge, lambda = 1
        pred = xt @ w
        mae[name] = float(np.abs(pred - test.labels).mean())
        corr[name] = float(np.corrcoef(pred, test.labels)[0, 1])
    assert corr["text"] > 0.25  # text alone carries part of the score ...
    assert mae["text+a+v+a*v"] < 0.85 * mae["text"], mae  # ... audio + vision much more ...
    assert corr["text+a+v+a*v"] > corr["text"] + 0.2, corr
    assert mae["text+a+v+a*v"] < mae["text+a+v"] - 0.01, mae  # ... and their interaction too
