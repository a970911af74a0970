"""The in-memory dataset: `SplitArrays` (one split, NumPy) and `MSADataset` (the three splits).

Why a module of its own: loading (`mmsa_core.data.dataset`), validation, masking and batching all
read these two types; defining them apart from the loader keeps those modules independent of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

__all__ = ["SplitArrays", "MSADataset"]


@dataclass(frozen=True, eq=False)
class SplitArrays:
    """One split, all NumPy (Ray's object store shares these zero-copy)."""

    text_ids: np.ndarray  # (N, L_t) int64   WordPiece ids of the run's text encoder
    text_mask: np.ndarray  # (N, L_t) int64   1 = real token
    text_type: np.ndarray  # (N, L_t) int64   token type ids
    audio: np.ndarray  # (N, L_a, d_a) float32, finite; valid frames first (front-aligned)
    audio_lengths: np.ndarray  # (N,) int64 in [0, L_a]
    vision: np.ndarray  # (N, L_v, d_v) float32, finite; front-aligned
    vision_lengths: np.ndarray  # (N,) int64 in [0, L_v]
    labels: np.ndarray  # (N,) float32 regression score
    ids: np.ndarray  # (N,) str  "video$_$clip"
    raw_text: np.ndarray  # (N,) str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def take(self, indices: Sequence[int] | np.ndarray | slice) -> SplitArrays:
        """The samples at ``indices`` (a slice gives views, an index array copies)."""
        return SplitArrays(**{f.name: getattr(self, f.name)[indices] for f in fields(self)})

    def __repr__(self) -> str:
        return (f"SplitArrays(N={len(self)}, text={self.text_ids.shape[1:]}, "
                f"audio={self.audio.shape[1:]}, vision={self.vision.shape[1:]})")


@dataclass(frozen=True, eq=False)
class MSADataset:
    """A loaded dataset: ``splits`` maps "train"/"valid"/"test" to `SplitArrays`."""

    name: str  # "synthetic-mosi", or the file's stem ("mosi_utt")
    source: str  # what load_dataset was given
    splits: dict[str, SplitArrays]

    @property
    def audio_dim(self) -> int:
        return int(self.splits["train"].audio.shape[2])

    @property
    def vision_dim(self) -> int:
        return int(self.splits["train"].vision.shape[2])

    @property
    def text_len(self) -> int:
        return int(self.splits["train"].text_ids.shape[1])

    @property
    def sizes(self) -> dict[str, int]:
        return {split: len(arrays) for split, arrays in self.splits.items()}

    @property
    def is_synthetic(self) -> bool:
        return self.name.startswith("synthetic")

    def __repr__(self) -> str:
        return (f"MSADataset(name={self.name!r}, sizes={self.sizes}, audio_dim={self.audio_dim}, "
                f"vision_dim={self.vision_dim}, text_len={self.text_len})")
