"""MMSA's missing-modality masking (`mmsa_core.data.masking`, its torch twin `masking_torch`).

The hand-worked example: a split of two samples, text length 6 (row 0: 5 real tokens, row 1: 6),
acoustic length 4 (lengths 3, 4), visual length 3 (lengths 2, 3), seeds (111, 1111, 11111).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from mmsa_core.data.arrays import SplitArrays
from mmsa_core.data.masking import (
    DEFAULT_SEEDS,
    RATES,
    UNK_ID,
    absent_split,
    droppable,
    dropped_positions,
    masked_dataset,
    masked_split,
    uniform_draws,
)


def _split(text_lengths=(5, 6), audio_lengths=(3, 4), vision_lengths=(2, 3), lt=6, la=4, lv=3,
           seed=0) -> SplitArrays:
    rng = np.random.default_rng(seed)
    n = len(text_lengths)
    pos = np.arange(lt)[None, :]
    tl = np.asarray(text_lengths)[:, None]
    mask = (pos < tl).astype(np.int64)
    ids = np.where(pos < tl, 1000 + 10 * np.arange(n)[:, None] + pos, 0).astype(np.int64)
    ids[:, 0] = 101  # [CLS]
    ids[np.arange(n), np.asarray(text_lengths) - 1] = 102  # [SEP]
    types = np.zeros((n, lt), dtype=np.int64)

    def frames(lengths, width):
        x = rng.normal(size=(n, width, 2)).astype(np.float32) + 5.0  # never 0
        x *= (np.arange(width)[None, :] < np.asarray(lengths)[:, None])[:, :, None]
        return x

    arrays = dict(text_ids=ids, text_mask=mask, text_type=types, audio=frames(audio_lengths, la),
                  audio_lengths=np.asarray(audio_lengths, dtype=np.int64), vision=frames(vision_lengths, lv),
                  vision_lengths=np.asarray(vision_lengths, dtype=np.int64),
                  labels=rng.normal(size=n).astype(np.float32), ids=np.array([f"v$_${i}" for i in range(n)]),
                  raw_text=np.array(["x"] * n))
    for a in arrays.values():
        a.setflags(write=False)
    return SplitArrays(**arrays)


def _copy(split: SplitArrays) -> dict[str, np.ndarray]:
    return {k: np.array(getattr(split, k), copy=True) for k in
            ("text_ids", "text_mask", "text_type", "audio", "audio_lengths", "vision", "vision_lengths", "labels")}


# ---------------------------------------------------------------------------------------------
# the hand-worked example


# RandomState(seed).uniform(size=...), rounded to 4 places (checked below):
U_T = [[0.6122, 0.1691, 0.4361, 0.7693, 0.2953, 0.1492],   # seed 111, shape (2, 6)
       [0.0225, 0.4202, 0.2387, 0.3377, 0.9907, 0.2377]]
U_A = [[0.0955, 0.9250, 0.3436, 0.3105],                   # seed 1111, shape (2, 4)
       [0.0020, 0.2356, 0.2378, 0.7359]]
U_V = [[0.8389, 0.4789, 0.4123],                           # seed 11111, shape (2, 3)
       [0.4064, 0.4997, 0.4485]]
# r = 0.3: U ≤ 0.3 at T row 0 {1, 4, 5}, row 1 {0, 2, 5}; droppable T row 0 {1, 2, 3} (0 = [CLS],
# 4 = [SEP], 5 = padding), row 1 {1, 2, 3, 4}  ->  dropped T {1} and {2}.
# A: U ≤ 0.3 at row 0 {0}, row 1 {0, 1, 2}; valid frames {0, 1, 2} and {0, 1, 2, 3} -> the same.
# V: no U ≤ 0.3 -> nothing.
DROP_03 = {"t": [[1], [2]], "a": [[0], [0, 1, 2]], "v": [[], []]}
# r = 0.45: T U ≤ 0.45 row 0 {1, 2, 4, 5}, row 1 {0, 1, 2, 3, 5} -> {1, 2} and {1, 2, 3};
# A row 0 {0, 2, 3} ∩ {0, 1, 2} -> {0, 2}, row 1 {0, 1, 2}; V row 0 {} , row 1 {0, 2}.
DROP_045 = {"t": [[1, 2], [1, 2, 3]], "a": [[0, 2], [0, 1, 2]], "v": [[], [0, 2]]}


def _positions(mask: np.ndarray) -> list[list[int]]:
    return [np.flatnonzero(row).tolist() for row in mask]


def test_draws_are_mmsas_seeded_uniforms_over_the_padded_shape():
    split = _split()
    draws = uniform_draws(split)
    for m, literal, seed in (("t", U_T, 111), ("a", U_A, 1111), ("v", U_V, 11111)):
        assert draws[m] == pytest.approx(np.array(literal), abs=5e-5)
        np.random.seed(seed)  # MMSA's own call: the same stream
        assert np.array_equal(draws[m], np.random.uniform(size=np.shape(literal)))


def test_global_numpy_rng_is_untouched():
    np.random.seed(7)
    expected = np.random.uniform(size=3)
    np.random.seed(7)
    masked_split(_split(), 0.5)
    assert np.array_equal(np.random.uniform(size=3), expected)


@pytest.mark.parametrize("rate, expected", [(0.3, DROP_03), (0.45, DROP_045)])
def test_hand_worked_positions(rate, expected):
    split = _split()
    hit = dropped_positions(split, rate)
    assert {m: _positions(v) for m, v in hit.items()} == expected
    out = masked_split(split, rate)
    for i in range(2):
        for j in range(6):
            want = UNK_ID if j in expected["t"][i] else split.text_ids[i, j]
            assert out.text_ids[i, j] == want
        for m, key in (("a", "audio"), ("v", "vision")):
            x, orig = getattr(out, key), getattr(split, key)
            for j in range(x.shape[1]):
                if j in expected[m][i]:
                    assert np.all(x[i, j] == 0)
                else:
                    assert np.array_equal(x[i, j], orig[i, j])


def test_cls_and_sep_are_always_kept_and_masks_lengths_unchanged():
    split = _split()
    out = masked_split(split, 1.0)
    assert np.all(out.text_ids[:, 0] == 101)
    assert out.text_ids[0, 4] == 102 and out.text_ids[1, 5] == 102
    assert out.text_ids[0, 5] == 0  # padding id stays
    for k in ("text_mask", "text_type", "audio_lengths", "vision_lengths", "labels", "ids", "raw_text"):
        assert getattr(out, k) is getattr(split, k)


def test_unk_id_is_an_argument():
    out = masked_split(_split(), 0.3, unk_id=7)
    assert out.text_ids[0, 1] == 7 and out.text_ids[1, 2] == 7
    with pytest.raises(ValueError, match="unk_id"):
        masked_split(_split(), 0.3, unk_id=-1)


def test_rate_zero_leaves_the_split_unchanged_and_rate_one_drops_every_droppable_position():
    split = _split()
    assert masked_split(split, 0.0) is split
    assert not any(v.any() for v in dropped_positions(split, 0.0).values())
    full = dropped_positions(split, 1.0)
    can = droppable(split)
    for m in "tav":
        assert np.array_equal(full[m], can[m])
    out = masked_split(split, 1.0)
    assert np.array_equal(out.text_ids == UNK_ID, can["t"])
    assert np.all(out.audio == 0) and np.all(out.vision == 0)  # padding was 0 already


def test_masks_are_nested_across_rates():
    split = _split(text_lengths=(12, 30, 2, 1), audio_lengths=(20, 0, 7, 25), vision_lengths=(3, 9, 25, 25),
                   lt=30, la=25, lv=25, seed=3)
    draws = uniform_draws(split)
    masks = [dropped_positions(split, r, draws=draws) for r in RATES]
    for lo, hi in zip(masks, masks[1:]):
        for m in "tav":
            assert np.all(hi[m] | ~lo[m])  # dropped(r1) ⊆ dropped(r2)
    counts = [sum(int(v.sum()) for v in mk.values()) for mk in masks]
    assert counts[0] == 0 and counts == sorted(counts)
    assert counts[-1] == sum(int(v.sum()) for v in droppable(split).values())


def test_rates_constant():
    assert RATES == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    assert DEFAULT_SEEDS == (111, 1111, 11111)


def test_subset_of_modalities():
    split = _split()
    out = masked_split(split, 0.45, modalities="va")
    assert out.text_ids is split.text_ids
    assert _positions(np.all(out.vision == 0, axis=2) & (np.arange(3) < split.vision_lengths[:, None])) \
        == DROP_045["v"]
    # the draws per modality do not depend on which others are masked
    assert np.array_equal(masked_split(split, 0.45, modalities="a").audio, out.audio)


def test_seeds_change_the_masks_and_bad_arguments_are_named():
    split = _split(lt=30, text_lengths=(30, 25), la=20, audio_lengths=(20, 18), lv=20, vision_lengths=(20, 20))
    a = dropped_positions(split, 0.5)
    b = dropped_positions(split, 0.5, seeds=(1, 2, 3))
    assert not all(np.array_equal(a[m], b[m]) for m in "tav")
    with pytest.raises(ValueError, match="rate"):
        masked_split(split, 1.5)
    with pytest.raises(ValueError, match="modalities"):
        masked_split(split, 0.5, modalities="tx")
    with pytest.raises(ValueError, match="seeds"):
        masked_split(split, 0.5, seeds=(1, 2))


def test_the_original_split_is_never_modified():
    split = _split()
    before = _copy(split)
    for r in (0.3, 1.0):
        masked_split(split, r)
    absent_split(split, "av")
    for k, v in before.items():
        assert np.array_equal(getattr(split, k), v)
    out = masked_split(split, 0.3)
    assert not out.text_ids.flags.writeable and not out.audio.flags.writeable


def test_masked_dataset_masks_the_named_splits_with_the_same_seeds():
    from mmsa_core.data.arrays import MSADataset

    data = MSADataset(name="toy", source="toy", splits={"train": _split(seed=1), "valid": _split(seed=2),
                                                          "test": _split(seed=3)})
    out = masked_dataset(data, 0.3, splits=("test",))
    assert out.splits["train"] is data.splits["train"] and out.splits["valid"] is data.splits["valid"]
    assert _positions(out.splits["test"].text_ids == UNK_ID) == DROP_03["t"]
    with pytest.raises(ValueError, match="splits"):
        masked_dataset(data, 0.3, splits=("dev",))


# ---------------------------------------------------------------------------------------------
# whole-modality drop


def test_absent_split_zeroes_frames_and_lengths():
    split = _split()
    out = absent_split(split, "a")
    assert np.all(out.audio == 0) and np.all(out.audio_lengths == 0)
    assert out.vision is split.vision and out.text_ids is split.text_ids
    both = absent_split(split, "va")
    assert np.all(both.vision_lengths == 0) and np.all(both.audio_lengths == 0)
    kept = absent_split(split, "v", keep_lengths=True)
    assert np.all(kept.vision == 0) and kept.vision_lengths is split.vision_lengths
    assert np.array_equal(kept.vision, masked_split(split, 1.0, modalities="v").vision)
    for bad in ("", "t", "ta"):
        with pytest.raises(ValueError, match="modalities"):
            absent_split(split, bad)


def test_import_stays_torch_free():
    code = "import sys, mmsa_core.data.masking; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------
# the torch twin


def _batch(split: SplitArrays):
    from mmsa_core.data.batching import SplitDataset

    return SplitDataset(split).collate(list(range(len(split))))


def test_torch_and_numpy_agree_given_the_same_draws():
    import torch

    from mmsa_core.data.masking_torch import mask_batch

    split = _split(text_lengths=(12, 30, 2, 1, 7), audio_lengths=(20, 0, 7, 25, 1),
                   vision_lengths=(3, 9, 25, 25, 0), lt=30, la=25, lv=25, seed=4)
    draws = uniform_draws(split)
    batch = _batch(split)
    for rate in RATES:
        for mods in ("tav", "t", "av"):
            want = masked_split(split, rate, modalities=mods, unk_id=55)
            got = mask_batch(batch, rate, unk_id=55, modalities=mods,
                             draws={m: torch.from_numpy(draws[m]) for m in mods})
            assert np.array_equal(got.text_ids.numpy(), want.text_ids)
            assert np.array_equal(got.audio.numpy(), want.audio)
            assert np.array_equal(got.vision.numpy(), want.vision)
            assert got.text_mask is batch.text_mask and got.audio_mask is batch.audio_mask


def test_mask_batch_draws_fresh_masks_from_its_generator_and_keeps_the_rules():
    import torch

    from mmsa_core.data.masking_torch import batch_droppable, mask_batch

    split = _split(text_lengths=(30, 25, 9), audio_lengths=(20, 18, 3), vision_lengths=(20, 20, 1),
                   lt=30, la=20, lv=20, seed=5)
    batch = _batch(split)
    originals = {k: getattr(batch, k).clone() for k in ("text_ids", "audio", "vision", "text_mask")}
    g = torch.Generator().manual_seed(0)
    first, second = mask_batch(batch, 0.3, generator=g), mask_batch(batch, 0.3, generator=g)
    assert not torch.equal(first.text_ids, second.text_ids)
    replay = mask_batch(batch, 0.3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(replay.text_ids, first.text_ids) and torch.equal(replay.audio, first.audio)
    can = batch_droppable(batch)
    for out in (first, second):
        changed = out.text_ids != batch.text_ids
        assert torch.equal(changed, (out.text_ids == UNK_ID) & can["t"])
        assert torch.all(out.text_ids[:, 0] == 101)
        zeroed = (out.audio == 0).all(-1) & batch.audio_mask
        assert not (zeroed & ~can["a"]).any()
        assert 0.1 < changed.sum().item() / can["t"].sum().item() < 0.5
    for k, v in originals.items():  # never in place
        assert torch.equal(getattr(batch, k), v)
    assert mask_batch(batch, 0.0, generator=g) is batch
    every = mask_batch(batch, 1.0, generator=g)
    assert torch.equal(every.text_ids == UNK_ID, can["t"]) and torch.all(every.audio == 0)


def test_drop_batch_modalities_per_sample_and_whole():
    import torch

    from mmsa_core.data.masking_torch import drop_batch_modalities

    split = _split(text_lengths=(5,) * 40, audio_lengths=(3,) * 40, vision_lengths=(2,) * 40)
    batch = _batch(split)
    whole = drop_batch_modalities(batch, "av")
    want = absent_split(split, "av")
    assert np.array_equal(whole.audio.numpy(), want.audio) and not whole.audio_mask.any()
    assert not whole.vision_mask.any() and whole.text_ids is batch.text_ids
    g = torch.Generator().manual_seed(1)
    some = drop_batch_modalities(batch, "a", rate=0.5, generator=g)
    gone = ~some.audio_mask.any(1)
    assert 5 < int(gone.sum()) < 35
    assert torch.all(some.audio[gone] == 0) and torch.equal(some.audio[~gone], batch.audio[~gone])
    assert some.vision is batch.vision
    kept = drop_batch_modalities(batch, "v", keep_lengths=True)
    assert kept.vision_mask is batch.vision_mask and torch.all(kept.vision == 0)
    assert drop_batch_modalities(batch, "a", rate=0.0) is batch
    with pytest.raises(ValueError, match="modalities"):
        drop_batch_modalities(batch, "t")

