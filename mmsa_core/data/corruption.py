"""Test-time corruption of modalities, for robustness curves.

`Corruption(kind, modalities, rate, seed)`:

- ``kind="frames"``: in each sample, a fraction ``rate`` of the valid frames of every listed
  stream is zeroed (lengths unchanged: the frames are there but empty); for text, that fraction of
  the real tokens between [CLS] and the final [SEP] is replaced by ``[MASK]``.
- ``kind="stream"``: each listed stream is removed entirely in a fraction ``rate`` of the samples
  (chosen independently per stream): features and length 0; text keeps only [CLS] [SEP].

The random choices depend only on (seed, kind, stream, sample index, frame), through a counter-
based hash: a sample is corrupted the same way whether the whole split or a batch holding it
is corrupted, and the frames removed at a lower rate are a subset of those removed at a higher
one (k = floor(rate * frames + u), so the expected fraction equals ``rate`` even for 1-frame data).
`apply_corruption` accepts a `SplitArrays` (NumPy) or a `batching.Batch` (torch) and returns the
same type; the input is never modified.

- ``kind="tokens"``: the field's protocol instead of this module's own draws — MMSA's masking
  (`mmsa_core.data.masking.masked_split`: each valid token / frame of the listed modalities dropped
  with ``keep = U(0,1) > rate``, tokens -> ``unk_token_id``, frames -> 0, one mask seed per modality,
  ``mask_seeds`` = (111, 1111, 11111) for (T, A, V) by default (MMSA's) whatever ``seed`` is, so a
  curve sits beside the published ones). Evaluation copies of a `SplitArrays` only (a training batch
  uses `masking_torch.mask_batch`).
- ``kind="absent"``: the listed acoustic / visual streams absent from every sample
  (`mmsa_core.data.masking.absent_split`: frames 0, lengths 0); ``rate`` is not used (1).

`key` names the setting in metric names (`mmsa_core.record_names.robust_prefix`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np

from mmsa_core.record_names import ABSENT_KIND, corruption_name, robust_prefix

__all__ = ["Corruption", "apply_corruption", "CORRUPTION_KINDS", "MASKING_KIND", "ABSENT_KIND", "ALL_KINDS"]

CORRUPTION_KINDS: tuple[str, ...] = ("frames", "stream")  # this module's own draws
MASKING_KIND = "tokens"  # the field's masking (mmsa_core.data.masking), see the module docstring
ALL_KINDS: tuple[str, ...] = (*CORRUPTION_KINDS, MASKING_KIND, ABSENT_KIND)
MMSA_MASK_SEEDS: tuple[int, int, int] = (111, 1111, 11111)  # = mmsa_core.data.masking.DEFAULT_SEEDS
_MODALITIES = "tav"
_KIND_CODE = {"frames": 1, "stream": 2}
_MOD_CODE = {"t": 1, "a": 2, "v": 3}
T = TypeVar("T")


@dataclass(frozen=True)
class Corruption:
    """What to corrupt: ``kind`` in {"frames", "stream", "tokens", "absent"}, ``modalities`` a subset of "tav"."""

    kind: Literal["frames", "stream", "tokens", "absent"]
    modalities: str
    rate: float = 1.0
    seed: int = 0
    mask_token_id: int = 103  # [MASK] of the uncased BERT WordPiece vocabulary
    unk_token_id: int = 100  # [UNK]: what kind="tokens" (MMSA masking) puts in place of a dropped token
    mask_seeds: tuple[int, int, int] = MMSA_MASK_SEEDS  # kind="tokens": the masks' seeds for (T, A, V)

    def __post_init__(self) -> None:
        problems = []
        if self.kind not in ALL_KINDS:
            problems.append(f"kind={self.kind!r} must be one of {list(ALL_KINDS)}")
        mods = self.modalities
        if (not isinstance(mods, str) or not mods or any(m not in _MODALITIES for m in mods)
                or len(set(mods)) != len(mods)):
            problems.append(f"modalities={mods!r} must be a non-empty subset of 'tav' without repeats")
        else:  # canonical order: "va" -> "av", so metric keys never differ for one setting
            object.__setattr__(self, "modalities", "".join(m for m in _MODALITIES if m in mods))
        if isinstance(self.rate, bool) or not isinstance(self.rate, (int, float)) \
                or not math.isfinite(self.rate) or not 0.0 <= self.rate <= 1.0:
            problems.append(f"rate={self.rate!r} must be a number in [0, 1]")
        else:
            object.__setattr__(self, "rate", float(self.rate))
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            problems.append(f"seed={self.seed!r} must be a non-negative integer")
        for name in ("mask_token_id", "unk_token_id"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                problems.append(f"{name}={v!r} must be a non-negative integer")
        seeds = tuple(self.mask_seeds)
        if len(seeds) != 3 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0 for v in seeds):
            problems.append(f"mask_seeds={self.mask_seeds!r} must be three non-negative integers (T, A, V)")
        object.__setattr__(self, "mask_seeds", seeds)
        if self.kind == ABSENT_KIND and isinstance(self.modalities, str) and "t" in self.modalities:
            problems.append(f"kind={ABSENT_KIND!r} removes acoustic / visual streams; modalities={self.modalities!r} "
                            "names the text")
        if problems:
            raise ValueError("invalid Corruption: " + "; ".join(problems))

    @property
    def key(self) -> str:
        """``frames-av/r0.30`` (``absent-av``: no rate): this setting in robustness metric names."""
        return corruption_name(self.kind, self.modalities, None if self.kind == ABSENT_KIND else self.rate)

    @property
    def metric_prefix(self) -> str:
        """``robust/frames-av/r0.30/test/``: the prefix of this setting's test metrics."""
        return robust_prefix(self.kind, self.modalities, None if self.kind == ABSENT_KIND else self.rate)


# --- counter-based uniforms ---------------------------------------------------------------------
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_COUNT_KEY = 1 << 40  # "frame" key of the per-sample count draw (no real frame has it)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (uint64 -> uint64, wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _uniform(*keys: Any) -> np.ndarray:
    """Uniforms in [0, 1) that depend only on the (broadcast) integer keys."""
    with np.errstate(over="ignore"):
        h = np.zeros((), dtype=np.uint64)
        for k in keys:
            h = _mix(h ^ (np.asarray(k).astype(np.uint64) + _GOLDEN))
        return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _frame_drop(c: Corruption, mod: str, index: np.ndarray, start: np.ndarray, count: np.ndarray,
                width: int) -> np.ndarray:
    """(N, width) bool: positions to corrupt; candidates are [start, start + count) per sample."""
    pos = np.arange(width)[None, :]
    cand = (pos >= start[:, None]) & (pos < (start + count)[:, None])
    code = (c.seed, _KIND_CODE[c.kind], _MOD_CODE[mod])
    priority = np.where(cand, _uniform(*code, index[:, None], pos), np.inf)
    rank = np.argsort(np.argsort(priority, axis=1, kind="stable"), axis=1, kind="stable")
    k = np.floor(c.rate * count + _uniform(*code, index, _COUNT_KEY)).astype(np.int64)
    return cand & (rank < k[:, None])


def _stream_drop(c: Corruption, mod: str, index: np.ndarray) -> np.ndarray:
    return _uniform(c.seed, _KIND_CODE[c.kind], _MOD_CODE[mod], index) < c.rate


def _corrupt_arrays(a: dict[str, np.ndarray], c: Corruption) -> dict[str, np.ndarray]:
    """Corrupt a dict of NumPy arrays (split field names + ``index``); returns changed copies."""
    out = dict(a)
    index = a["index"].astype(np.int64)
    if c.rate == 0.0:
        return out
    for mod in c.modalities:
        if mod == "t":
            ids, mask, types = a["text_ids"].copy(), a["text_mask"].copy(), a["text_type"].copy()
            n_real = mask.sum(axis=1).astype(np.int64)
            if c.kind == "frames":  # tokens 1 .. n-2: keep [CLS] and the final [SEP]
                hit = _frame_drop(c, mod, index, np.ones_like(n_real), np.maximum(n_real - 2, 0), ids.shape[1])
                ids[hit] = c.mask_token_id
            else:
                rows = np.flatnonzero(_stream_drop(c, mod, index) & (n_real >= 2))
                last = ids[rows, n_real[rows] - 1]
                ids[rows], mask[rows], types[rows] = 0, 0, 0
                ids[rows, 0] = a["text_ids"][rows, 0]
                ids[rows, 1] = last
                mask[rows, :2] = 1
            out["text_ids"], out["text_mask"], out["text_type"] = ids, mask, types
        else:
            key = "audio" if mod == "a" else "vision"
            x, lens = a[key].copy(), a[f"{key}_lengths"].copy()
            if c.kind == "frames":
                x[_frame_drop(c, mod, index, np.zeros_like(lens), lens.astype(np.int64), x.shape[1])] = 0.0
            else:
                rows = _stream_drop(c, mod, index)
                x[rows] = 0.0
                lens[rows] = 0
            out[key], out[f"{key}_lengths"] = x, lens
    return out


_SPLIT_KEYS = ("text_ids", "text_mask", "text_type", "audio", "audio_lengths", "vision", "vision_lengths")


def apply_corruption(data: T, corruption: Corruption) -> T:
    """Return a corrupted copy of a `SplitArrays` or a `Batch` (same type; input untouched)."""
    from mmsa_core.data.arrays import SplitArrays

    if not isinstance(corruption, Corruption):
        raise TypeError(f"corruption must be a Corruption, got {type(corruption).__name__}")
    if corruption.kind in (MASKING_KIND, ABSENT_KIND):
        if not isinstance(data, SplitArrays):
            raise TypeError(f"kind={corruption.kind!r} makes evaluation copies of a SplitArrays, got "
                            f"{type(data).__name__}; mask a training batch with "
                            "mmsa_core.data.masking_torch")
        from mmsa_core.data.masking import absent_split, masked_split

        if corruption.kind == ABSENT_KIND:
            return absent_split(data, corruption.modalities)  # type: ignore[return-value]
        return masked_split(data, corruption.rate, seeds=corruption.mask_seeds, unk_id=int(corruption.unk_token_id),
                            modalities=corruption.modalities)  # type: ignore[return-value]
    if isinstance(data, SplitArrays):
        arrays = {k: getattr(data, k) for k in _SPLIT_KEYS}
        arrays["index"] = np.arange(len(data))
        out = _corrupt_arrays(arrays, corruption)
        changed = {k: v for k, v in out.items() if k in _SPLIT_KEYS and v is not arrays[k]}
        for v in changed.values():
            v.setflags(write=False)
        return dataclasses.replace(data, **changed)
    if type(data).__name__ == "Batch" and hasattr(data, "audio_mask"):
        return _corrupt_batch(data, corruption)
    raise TypeError(f"apply_corruption takes a SplitArrays or a Batch, got {type(data).__name__}")


def _corrupt_batch(batch: Any, c: Corruption) -> Any:
    import torch

    arrays = {k: getattr(batch, k).detach().cpu().numpy() for k in
              ("text_ids", "text_mask", "text_type", "audio", "vision", "index")}
    arrays["audio_lengths"] = batch.audio_mask.sum(dim=1).cpu().numpy()
    arrays["vision_lengths"] = batch.vision_mask.sum(dim=1).cpu().numpy()
    out = _corrupt_arrays(arrays, c)
    changes = {}
    for k in ("text_ids", "text_mask", "text_type", "audio", "vision"):
        if out[k] is not arrays[k]:
            ref = getattr(batch, k)
            changes[k] = torch.from_numpy(out[k]).to(device=ref.device, dtype=ref.dtype)
    for key in ("audio", "vision"):
        if out[f"{key}_lengths"] is not arrays[f"{key}_lengths"]:
            ref = getattr(batch, f"{key}_mask")
            lens = torch.from_numpy(out[f"{key}_lengths"]).to(ref.device)
            changes[f"{key}_mask"] = torch.arange(ref.shape[1], device=ref.device)[None, :] < lens[:, None]
    return dataclasses.replace(batch, **changes)
