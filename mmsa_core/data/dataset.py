"""The in-memory dataset every run trains on, and `load_dataset`, the one way to build it.

`load_dataset(source)` takes a synthetic name (``synthetic-mosi``, ``synthetic-mosei``), an MMSA
pickle (aligned or unaligned; its converted ``<stem>.mmsa/`` twin is preferred when present) or a
converted directory, and returns an `MSADataset` of NumPy arrays (see docs/ARCHITECTURE.md, "Data
contract"). Steps: restricted load -> `validate_raw` -> lengths (length keys, else all-zero
frames) -> padding side detected per sample and valid frames moved to the front -> -inf set to 0
-> acoustic/visual features z-normalised with train-split statistics over valid frames -> token
ids (the file's `text_bert` when the encoder shares its vocabulary, else `raw_text` tokenized and
cached). Arrays are made read-only: a loaded dataset is shared between trials and never changes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from mmsa_core.data.arrays import MSADataset, SplitArrays
from mmsa_core.data.pickle_io import DEFAULT_MAX_BYTES, DataFileError, load_raw
from mmsa_core.data.validate import REQUIRED_SPLITS, validate_dataset, validate_raw

__all__ = ["SplitArrays", "MSADataset", "load_dataset", "SYNTHETIC_SOURCES"]

log = logging.getLogger(__name__)

SYNTHETIC_SOURCES: dict[str, str] = {"synthetic-mosi": "mosi", "synthetic-mosei": "mosei"}
_CHUNK = 1 << 24  # elements per chunk for passes over big feature arrays


# --- frames -------------------------------------------------------------------------------------
def _frame_nonzero(x: np.ndarray) -> np.ndarray:
    """(N, L) bool: frame holds any non-zero value (chunked over N)."""
    out = np.zeros(x.shape[:2], dtype=bool)
    step = max(1, _CHUNK // max(1, x.shape[1] * x.shape[2]))
    for i in range(0, x.shape[0], step):
        out[i:i + step] = (x[i:i + step] != 0).any(axis=2)
    return out


def _front_align(x: Any, lengths: Any, *, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Float32 copy of ``x`` with -inf -> 0, valid frames moved to the front, padding zeroed.

    With ``lengths`` the valid window is the first or the last ``length`` frames, whichever holds
    the sample's non-zero frames (ties: the first). Without, the window spans the first to the
    last non-zero frame (all-zero frames inside it stay valid).
    """
    x = np.array(x, dtype=np.float32, copy=True)
    np.place(x, np.isneginf(x), 0.0)
    n, pad = x.shape[:2]
    nonzero = _frame_nonzero(x)
    pos = np.arange(pad)[None, :]
    if lengths is None:
        has = nonzero.any(axis=1)
        first = np.argmax(nonzero, axis=1)
        last = pad - 1 - np.argmax(nonzero[:, ::-1], axis=1)
        lens = np.where(has, last - first + 1, 0).astype(np.int64)
        start = np.where(has, first, 0)
    else:
        lens = np.asarray(lengths, dtype=np.float64).astype(np.int64).reshape(n)
        outside_front = (nonzero & (pos >= lens[:, None])).sum(axis=1)
        outside_back = (nonzero & (pos < (pad - lens)[:, None])).sum(axis=1)
        start = np.where(outside_back < outside_front, pad - lens, 0)
        lost = np.minimum(outside_front, outside_back) > 0
        if lost.any():
            log.warning("%s: %d sample(s) have non-zero frames outside their valid length on both "
                        "sides (first: %s); those frames are dropped", where, int(lost.sum()),
                        np.flatnonzero(lost)[:5].tolist())
    rows = np.flatnonzero(start > 0)
    if rows.size:
        idx = np.minimum(start[rows, None] + pos, pad - 1)  # (R, L) source frame per target frame
        x[rows] = np.take_along_axis(x[rows], idx[:, :, None], axis=1)
    x *= (pos < lens[:, None])[:, :, None]  # zero padding (and anything outside the window)
    return x, lens


def _valid_moments(x: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std over valid frames (float64 accumulation, chunked)."""
    d = x.shape[2]
    total, total_sq, count = np.zeros(d), np.zeros(d), 0
    step = max(1, _CHUNK // max(1, x.shape[1] * d))
    pos = np.arange(x.shape[1])[None, :]
    for i in range(0, x.shape[0], step):
        valid = pos < lens[i:i + step, None]
        frames = x[i:i + step][valid].astype(np.float64)  # (frames, d)
        total += frames.sum(axis=0)
        total_sq += (frames * frames).sum(axis=0)
        count += frames.shape[0]
    if count == 0:
        return np.zeros(d), np.ones(d)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean * mean, 0.0))
    std[std < 1e-8 * np.maximum(1.0, np.abs(mean))] = 1.0  # constant feature: centre only
    return mean, std


def _normalise(x: np.ndarray, lens: np.ndarray, mean: np.ndarray, std: np.ndarray) -> None:
    """In place: (x - mean) / std on valid frames; padding stays 0."""
    step = max(1, _CHUNK // max(1, x.shape[1] * x.shape[2]))
    pos = np.arange(x.shape[1])[None, :]
    m, s = mean.astype(np.float32), std.astype(np.float32)
    for i in range(0, x.shape[0], step):
        chunk = x[i:i + step]
        chunk -= m
        chunk /= s
        chunk *= (pos < lens[i:i + step, None])[:, :, None]


# --- tokens -------------------------------------------------------------------------------------
def _tokens(raw: Mapping[str, Any], spec: Any, max_len: int, *, where: str,
            cache_dir: str | os.PathLike[str] | None) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    from mmsa_core.data.tokenize import (BERT_UNCASED_VOCAB_SIZE, cached_tokenize, fit_length,
                                         uses_bert_uncased_vocab)

    if all("text_bert" in raw[s] for s in REQUIRED_SPLITS) and uses_bert_uncased_vocab(spec):
        out = {}
        for split in REQUIRED_SPLITS:
            tb = np.asarray(raw[split]["text_bert"])
            ids, mask, types = (tb[:, k].astype(np.int64) for k in range(3))
            if ids.size and int(ids.max()) >= BERT_UNCASED_VOCAB_SIZE:
                raise DataFileError(f"{where}: split {split!r}: key 'text_bert' holds token id "
                                    f"{int(ids.max())}, outside the uncased BERT vocabulary "
                                    f"({BERT_UNCASED_VOCAB_SIZE} tokens)")
            out[split] = fit_length(ids, mask, types, max_len)
        return out
    texts = {s: [t.decode() if isinstance(t, bytes) else str(t) for t in raw[s]["raw_text"]]
             for s in REQUIRED_SPLITS}
    return cached_tokenize(texts, spec, max_len, cache_dir=cache_dir)


# --- loading ------------------------------------------------------------------------------------
def _strings(values: Any) -> np.ndarray:
    seq = values.ravel().tolist() if isinstance(values, np.ndarray) else list(values)
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in seq], dtype=str)


def _truncate(raw: Mapping[str, Any], sizes: Sequence[int] | None) -> dict[str, dict[str, Any]]:
    """Each split cut to its first ``sizes[k]`` samples (None or 0 = all)."""
    if sizes is None:
        return {s: dict(raw[s]) for s in REQUIRED_SPLITS}
    if len(sizes) != 3 or any(int(n) != n or n < 0 for n in sizes):
        raise ValueError(f"sizes={tuple(sizes)!r} must be three non-negative integers (train, valid, test)")
    out = {}
    for split, n in zip(REQUIRED_SPLITS, sizes):
        out[split] = {k: (v[: int(n)] if n and hasattr(v, "__getitem__") and not isinstance(v, (str, bytes))
                          else v) for k, v in raw[split].items()}
    return out


def load_dataset(source: str | os.PathLike[str], *, text_encoder: str = "minilm", max_text_len: int = 50,
                 seed: int = 0, sizes: Sequence[int] | None = None, normalize: bool = True,
                 cache_dir: str | os.PathLike[str] | None = None,
                 expected_dims: Mapping[str, int] | None = None,
                 max_bytes: int = DEFAULT_MAX_BYTES) -> MSADataset:
    """Load a dataset into the data contract's `MSADataset`.

    Args:
        source: ``"synthetic-mosi"`` / ``"synthetic-mosei"``, an MMSA pickle, or a converted
            ``<stem>.mmsa/`` directory.
        text_encoder: ``"minilm"``, ``"tiny"`` or a local Hugging Face directory; decides the
            token vocabulary (the file's `text_bert` is reused only for uncased BERT WordPiece).
        max_text_len: token length of the arrays (longer sequences keep their final [SEP]).
        seed: seed of the synthetic generator (files ignore it).
        sizes: (train, valid, test); synthetic: samples to generate (None or 0 = the real
            dataset's size); file: keep the first n of each split (None or 0 = all).
        normalize: z-normalise acoustic/visual features with train statistics over valid frames.
        cache_dir: token cache (default ``$MMSA_CACHE_DIR`` or ``~/.cache/mmsa_core``).
        expected_dims: e.g. ``{"audio": 5, "vision": 20}``: any other width is a validation error.
        max_bytes: size cap for a pickle.

    Raises:
        DataValidationError: every problem of the file, one line each.
        UnsafePickleError / DataFileError: unsafe, truncated, oversized or unreadable file.
    """
    from mmsa_core.models.text_encoder import resolve_text_encoder

    src = os.fspath(source)
    if src in SYNTHETIC_SOURCES:
        from mmsa_core.data.synthetic import make_synthetic

        raw: Any = make_synthetic(SYNTHETIC_SOURCES[src], seed=seed, sizes=sizes)
        name, where = src, f"{src} (seed {seed})"
        sizes = None  # already generated at that size
    else:
        path = Path(src).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"data source {src!r}: not one of {sorted(SYNTHETIC_SOURCES)} and "
                                    "no such file or directory")
        raw, name, read_from = load_raw(path, max_bytes=max_bytes)
        where = str(read_from)
    validate_raw(raw, source=where, expected_dims=expected_dims)
    raw = _truncate(raw, sizes)
    spec = resolve_text_encoder(text_encoder)
    tokens = _tokens(raw, spec, max_text_len, where=where, cache_dir=cache_dir)

    streams: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for split in REQUIRED_SPLITS:
        streams[split] = {
            key: _front_align(raw[split][key], raw[split].get(f"{key}_lengths"),
                              where=f"{where}: split {split!r}, key {key!r}")
            for key in ("audio", "vision")
        }
    if normalize:
        for key in ("audio", "vision"):
            mean, std = _valid_moments(*streams["train"][key])
            for split in REQUIRED_SPLITS:
                _normalise(*streams[split][key], mean, std)

    splits: dict[str, SplitArrays] = {}
    for split in REQUIRED_SPLITS:
        ids, mask, types = tokens[split]
        (audio, audio_len), (vision, vision_len) = streams[split]["audio"], streams[split]["vision"]
        arrays = SplitArrays(
            text_ids=np.ascontiguousarray(ids, dtype=np.int64),
            text_mask=np.ascontiguousarray(mask, dtype=np.int64),
            text_type=np.ascontiguousarray(types, dtype=np.int64),
            audio=audio, audio_lengths=audio_len, vision=vision, vision_lengths=vision_len,
            labels=np.asarray(raw[split]["regression_labels"], dtype=np.float32).reshape(-1).copy(),
            ids=_strings(raw[split]["id"]), raw_text=_strings(raw[split]["raw_text"]),
        )
        for f in fields(arrays):
            getattr(arrays, f.name).setflags(write=False)
        splits[split] = arrays
    data = MSADataset(name=name, source=src, splits=splits)
    validate_dataset(data, expected_dims=expected_dims, text_len=max_text_len)
    return data


def replace_split(data: MSADataset, split: str, arrays: SplitArrays) -> MSADataset:
    """A copy of ``data`` with one split swapped (e.g. a corrupted test split)."""
    return replace(data, splits={**data.splits, split: arrays})
