"""Torch batches over a split: shapes, masks, zero-copy views, seeded order (batching.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from mmsa_core.data import load_dataset
from mmsa_core.data.batching import Batch, SplitDataset, make_loader


@pytest.fixture(scope="module")
def split():
    return load_dataset("synthetic-mosi", seed=0, sizes=(37, 8, 8)).splits["train"]


def test_batch_shapes_masks_and_values(split):
    batches = list(make_loader(split, batch_size=16, shuffle=False, seed=0))
    assert [len(b) for b in batches] == [16, 16, 5]
    b = batches[0]
    assert isinstance(b, Batch)
    assert b.text_ids.shape == b.text_mask.shape == b.text_type.shape == (16, 50)
    assert b.audio.shape == (16, 50, 5) and b.vision.shape == (16, 50, 20)
    assert b.audio_mask.shape == b.vision_mask.shape == (16, 50)
    assert b.text_ids.dtype == torch.int64 and b.audio.dtype == torch.float32
    assert b.audio_mask.dtype == torch.bool and b.labels.dtype == torch.float32
    torch.testing.assert_close(b.index, torch.arange(16))
    np.testing.assert_array_equal(b.audio_mask.sum(1).numpy(), split.audio_lengths[:16])
    np.testing.assert_array_equal(b.vision_mask.sum(1).numpy(), split.vision_lengths[:16])
    assert b.audio_mask[:, 0].all()  # front-aligned: valid frames first
    np.testing.assert_array_equal(b.audio.numpy(), split.audio[:16])
    np.testing.assert_array_equal(b.labels.numpy(), split.labels[:16])
    assert b.to("cpu").labels.device.type == "cpu"


def test_views_not_copies(split):
    assert not split.audio.flags.writeable
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # read-only arrays must not warn
        ds = SplitDataset(split)
    assert ds._t["audio"].data_ptr() == split.audio.ctypes.data
    assert ds._t["text_ids"].data_ptr() == split.text_ids.ctypes.data
    assert len(ds) == len(split)


def test_shuffled_order_is_seeded(split):
    def order(seed):
        return torch.cat([b.index for b in make_loader(split, batch_size=8, shuffle=True, seed=seed)]).tolist()

    first = order(3)
    assert sorted(first) == list(range(len(split)))
    assert order(3) == first and order(4) != first and first != sorted(first)
    loader = make_loader(split, batch_size=8, shuffle=True, seed=3)
    epochs = [[int(i) for b in loader for i in b.index] for _ in range(2)]
    assert epochs[0] == first and epochs[1] != first  # later epochs continue the seeded stream
    with pytest.raises(ValueError):
        make_loader(split, batch_size=0)
