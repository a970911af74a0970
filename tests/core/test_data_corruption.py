"""Test-time corruption: validation, rates, determinism, split/batch agreement (corruption.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmsa_core.data import Corruption, apply_corruption, load_dataset
from mmsa_core.data.batching import make_loader


@pytest.fixture(scope="module")
def split():
    return load_dataset("synthetic-mosi", seed=0, sizes=(8, 8, 600)).splits["test"]


def _valid(x, lens):
    return np.arange(x.shape[1])[None, :] < lens[:, None]


def test_validation_and_key():
    c = Corruption(kind="frames", modalities="va", rate=0.3, seed=0)
    assert c.modalities == "av" and c.key == "frames-av/r0.30"
    for bad in (dict(kind="noise", modalities="a", rate=0.1), dict(kind="frames", modalities="ax", rate=0.1),
                dict(kind="frames", modalities="", rate=0.1), dict(kind="frames", modalities="aa", rate=0.1),
                dict(kind="frames", modalities="a", rate=1.5), dict(kind="frames", modalities="a", rate=float("nan")),
                dict(kind="stream", modalities="a", rate=0.1, seed=-1)):
        with pytest.raises(ValueError, match="invalid Corruption"):
            Corruption(**bad)
    with pytest.raises(TypeError):
        apply_corruption({"audio": 1}, c)


def test_frames_rate_and_untouched_streams(split):
    out = apply_corruption(split, Corruption("frames", "av", 0.3, seed=1))
    for key in ("audio", "vision"):
        x, lens = getattr(split, key), getattr(split, f"{key}_lengths")
        valid = _valid(x, lens)
        zeroed = (getattr(out, key) == 0).all(axis=2) & valid
        assert abs(zeroed.sum() / valid.sum() - 0.3) < 0.02, key
        kept = valid & ~zeroed
        np.testing.assert_array_equal(getattr(out, key)[kept], x[kept])
        np.testing.assert_array_equal(getattr(out, f"{key}_lengths"), lens)
    assert out.text_ids is split.text_ids and out.labels is split.labels  # text untouched, no copy
    assert (np.abs(split.audio).sum(-1)[_valid(split.audio, split.audio_lengths)] > 0).all()  # input intact


def test_text_frames_keep_cls_and_sep(split):
    out = apply_corruption(split, Corruption("frames", "t", 0.5, seed=2))
    n = split.text_mask.sum(1)
    inner = (np.arange(50)[None, :] >= 1) & (np.arange(50)[None, :] < (n - 1)[:, None])
    masked = out.text_ids == 103
    assert not (masked & ~inner).any()
    assert abs(masked.sum() / inner.sum() - 0.5) < 0.03
    np.testing.assert_array_equal(out.text_mask, split.text_mask)
    assert (out.text_ids[:, 0] == 101).all() and (out.text_ids[np.arange(len(n)), n - 1] == 102).all()


def test_stream_removal(split):
    out = apply_corruption(split, Corruption("stream", "tv", 0.4, seed=3))
    gone = out.vision_lengths == 0
    assert abs(gone.mean() - 0.4) < 0.06
    assert (out.vision[gone] == 0).all() and (out.vision[~gone] == split.vision[~gone]).all()
    no_text = out.text_mask.sum(1) == 2
    assert abs(no_text.mean() - 0.4) < 0.06 and 0.05 < (gone & no_text).mean() < 0.3  # independent
    assert (out.text_ids[no_text, 0] == 101).all() and (out.text_ids[no_text, 1] == 102).all()
    assert (out.text_ids[no_text, 2:] == 0).all()
    np.testing.assert_array_equal(out.audio, split.audio)
    everything = apply_corruption(split, Corruption("stream", "a", 1.0))
    assert (everything.audio_lengths == 0).all() and (everything.audio == 0).all()
    assert apply_corruption(split, Corruption("stream", "a", 0.0)).audio is split.audio


def test_deterministic_nested_and_batch_consistent(split):
    c = Corruption("frames", "tav", 0.3, seed=5)
    a, b = apply_corruption(split, c), apply_corruption(split, c)
    other = apply_corruption(split, Corruption("frames", "tav", 0.3, seed=6))
    for key in ("audio", "vision", "text_ids"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
        assert not np.array_equal(getattr(a, key), getattr(other, key))
    more = apply_corruption(split, Corruption("frames", "tav", 0.6, seed=5))
    zero_low, zero_high = (a.audio == 0).all(-1), (more.audio == 0).all(-1)
    assert (zero_high | ~zero_low).all()  # frames dropped at 0.3 are also dropped at 0.6
    # a batch is corrupted exactly like its rows in the corrupted split
    for kind in ("frames", "stream"):
        cc = Corruption(kind, "tav", 0.5, seed=7)
        whole = apply_corruption(split, cc)
        for batch in list(make_loader(split, batch_size=64, shuffle=True, seed=0))[:2]:
            cb = apply_corruption(batch, cc)
            rows = batch.index.numpy()
            np.testing.assert_array_equal(cb.audio.numpy(), whole.audio[rows])
            np.testing.assert_array_equal(cb.text_ids.numpy(), whole.text_ids[rows])
            np.testing.assert_array_equal(cb.text_mask.numpy(), whole.text_mask[rows])
            np.testing.assert_array_equal(cb.vision_mask.sum(1).numpy(), whole.vision_lengths[rows])
            assert cb.audio_mask.dtype == torch.bool
