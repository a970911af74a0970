"""Torch side of the data: a map-style `Dataset` over a `SplitArrays`, its collate, and loaders.

The tensors are `torch.from_numpy` views of the split's arrays (no copies; read-only arrays from
Ray's object store work too); a batch is gathered with one index per array. This module imports
torch; `mmsa_core.data` itself does not import it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

if TYPE_CHECKING:
    from mmsa_core.data.arrays import SplitArrays

__all__ = ["Batch", "SplitDataset", "make_loader"]


@dataclass
class Batch:
    """One mini-batch; B = batch size."""

    text_ids: torch.Tensor  # (B, L_t) int64
    text_mask: torch.Tensor  # (B, L_t) int64, 1 = real token
    text_type: torch.Tensor  # (B, L_t) int64
    audio: torch.Tensor  # (B, L_a, d_a) float32, valid frames first
    audio_mask: torch.Tensor  # (B, L_a) bool, True = valid frame
    vision: torch.Tensor  # (B, L_v, d_v) float32
    vision_mask: torch.Tensor  # (B, L_v) bool, True = valid frame
    labels: torch.Tensor  # (B,) float32
    index: torch.Tensor  # (B,) int64, row of each sample in its split

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> Batch:
        """The batch with every tensor on ``device``."""
        return Batch(**{f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
                        for f in fields(self)})


def _view(a: np.ndarray) -> torch.Tensor:
    with warnings.catch_warnings():  # read-only arrays: we only ever read through these views
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(a)


class SplitDataset(Dataset):
    """Map-style dataset over one split; items are row indices, `collate` gathers the batch."""

    def __init__(self, split: SplitArrays) -> None:
        self.split = split
        self._t = {name: _view(getattr(split, name)) for name in
                   ("text_ids", "text_mask", "text_type", "audio", "audio_lengths", "vision",
                    "vision_lengths", "labels")}

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> int:
        return int(i)

    def collate(self, indices: list[int]) -> Batch:
        """Gather rows ``indices`` into a `Batch` (masks from the lengths)."""
        idx = torch.as_tensor(indices, dtype=torch.int64)
        t = self._t
        audio_len, vision_len = t["audio_lengths"][idx], t["vision_lengths"][idx]
        return Batch(
            text_ids=t["text_ids"][idx], text_mask=t["text_mask"][idx], text_type=t["text_type"][idx],
            audio=t["audio"][idx],
            audio_mask=torch.arange(t["audio"].shape[1])[None, :] < audio_len[:, None],
            vision=t["vision"][idx],
            vision_mask=torch.arange(t["vision"].shape[1])[None, :] < vision_len[:, None],
            labels=t["labels"][idx], index=idx,
        )


def make_loader(split: SplitArrays, batch_size: int, shuffle: bool = False, seed: int = 0, *,
                drop_last: bool = False, pin_memory: bool = False) -> DataLoader:
    """A `DataLoader` of `Batch`es; with ``shuffle`` the order comes from a generator seeded by
    ``seed`` (the sequence of epochs' orders is the same on every run; ``loader.generator``
    holds the state to checkpoint)."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    ds = SplitDataset(split)
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      collate_fn=ds.collate, drop_last=drop_last, num_workers=0, pin_memory=pin_memory)
