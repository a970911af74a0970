"""Torch twin of `mmsa_core.data.masking`: MMSA's masking rules on a training `Batch`.

Same rules as the NumPy evaluation copies (``keep = U(0,1) > r`` among the droppable positions;
text keeps [CLS] and the final [SEP], dropped ids -> unk id, attention mask unchanged; dropped
frames -> 0, lengths unchanged), but the uniforms are drawn fresh on every call from a
``torch.Generator`` (MM-CKD's students see a new mask per batch), on the batch's device, with no
NumPy and no host synchronisation (the lengths are read from the masks on the device).

Draw order, for reproducibility from a generator's state: one ``torch.rand`` of shape (B, L_m) per
masked modality, in the order T, A, V; `drop_batch_modalities` draws one (B,) vector per stream,
A then V. Given the same uniforms (``draws=``), the result equals `masking.masked_split` /
`masking.absent_split` on the same samples (tests/core/test_data_masking.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch

from mmsa_core.data.batching import Batch
from mmsa_core.data.masking import MASK_MODALITIES, UNK_ID, check_modalities, check_rate

__all__ = ["mask_batch", "drop_batch_modalities", "batch_droppable"]

_FRAMES = {"a": ("audio", "audio_mask"), "v": ("vision", "vision_mask")}


def _uniform(shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    if generator is None:
        return torch.rand(shape, device=device)
    # a generator lives on one device; draw there (normally the batch's) and move if it differs
    return torch.rand(shape, device=generator.device, generator=generator).to(device)


def batch_droppable(batch: Batch, modalities: str = MASK_MODALITIES) -> dict[str, torch.Tensor]:
    """``{m: (B, L_m) bool}`` droppable positions of a batch (see `masking.droppable`)."""
    modalities = check_modalities(modalities)
    out: dict[str, torch.Tensor] = {}
    for m in modalities:
        if m == "t":
            real = batch.text_mask != 0
            length = real.sum(dim=1, keepdim=True)
            pos = torch.arange(real.shape[1], device=real.device)[None, :]
            out[m] = real & (pos != 0) & (pos != length - 1)
        else:
            out[m] = getattr(batch, _FRAMES[m][1]).bool()
    return out


def mask_batch(batch: Batch, rate: float, *, generator: torch.Generator | None = None,
               unk_id: int = UNK_ID, modalities: str = MASK_MODALITIES,
               draws: Mapping[str, torch.Tensor] | None = None) -> Batch:
    """A copy of `batch` with MMSA's token / frame masking at `rate` (fresh uniforms per call).

    Args:
        batch: the batch (not modified; unchanged tensors are shared with the copy).
        rate: r in [0, 1]; r = 0 returns `batch` itself and draws nothing.
        generator: source of the uniforms (None: torch's default generator of the device).
        unk_id: id a dropped token becomes (the run's tokenizer's unk id).
        modalities: which of "tav" to mask.
        draws: optional ``{m: (B, L_m) uniforms}`` to use instead of drawing (replay, tests).
    """
    rate = check_rate(rate)
    modalities = check_modalities(modalities)
    if isinstance(unk_id, bool) or not isinstance(unk_id, int) or unk_id < 0:
        raise ValueError(f"unk_id={unk_id!r} must be a non-negative integer token id")
    if rate == 0.0 or not modalities:
        return batch
    can = batch_droppable(batch, modalities)
    changes: dict[str, torch.Tensor] = {}
    for m in modalities:  # T, A, V order: the generator's stream is consumed in this order
        u = draws[m] if draws is not None else _uniform(tuple(can[m].shape), can[m].device, generator)
        if tuple(u.shape) != tuple(can[m].shape):
            raise ValueError(f"draws[{m!r}] has shape {tuple(u.shape)}, the batch's {m} positions "
                             f"{tuple(can[m].shape)}")
        hit = can[m] & ~(u.to(can[m].device) > rate)
        if m == "t":
            changes["text_ids"] = batch.text_ids.masked_fill(hit, unk_id)
        else:
            key = _FRAMES[m][0]
            changes[key] = getattr(batch, key).masked_fill(hit[:, :, None], 0.0)
    return dataclasses.replace(batch, **changes)


def drop_batch_modalities(batch: Batch, modalities: str = "av", *, rate: float = 1.0,
                          generator: torch.Generator | None = None, keep_lengths: bool = False,
                          draws: Mapping[str, torch.Tensor] | None = None) -> Batch:
    """A copy of `batch` in which each listed stream is absent, per sample with probability `rate`.

    An absent stream's frames become 0 and its mask all False (length 0; ``keep_lengths=True``
    keeps the mask). Streams are drawn independently (``absent = not U > r``); r = 1 removes the
    streams from every sample without drawing, r = 0 returns `batch`. At r = 1 this equals
    `masking.absent_split`.
    """
    rate = check_rate(rate)
    modalities = check_modalities(modalities, allowed="av")
    if not modalities:
        raise ValueError("modalities='' names no stream to remove; use a non-empty subset of 'av'")
    if rate == 0.0:
        return batch
    changes: dict[str, torch.Tensor] = {}
    for m in modalities:
        key, mask_key = _FRAMES[m]
        x, valid = getattr(batch, key), getattr(batch, mask_key)
        if rate == 1.0 and draws is None:
            gone = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        else:
            u = draws[m] if draws is not None else _uniform((x.shape[0],), x.device, generator)
            gone = ~(u.to(x.device) > rate)
        changes[key] = x.masked_fill(gone[:, None, None], 0.0)
        if not keep_lengths:
            changes[mask_key] = valid & ~gone[:, None]
    return dataclasses.replace(batch, **changes)
