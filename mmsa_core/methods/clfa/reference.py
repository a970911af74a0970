"""CLFA's frozen reference space: one sentence embedding per transcript, computed once, cached on disk.

CLFA aligns each modality to a frozen CLIP embedding of the same sample; the feature files hold no
frames, so this port's reference is a frozen text encoder's sentence embedding of the transcript
(`SplitArrays.raw_text`). The recipe is sentence-transformers' for all-MiniLM-L6-v2 (its
``modules.json``: Transformer -> mean Pooling -> Normalize): the encoder's own tokenizer (truncation
at ``max_seq_length`` = 256, capped at the encoder's position table), the last hidden states averaged
over the attention mask, L2-normalised. No gradient, eval mode (no dropout).

The embeddings never change during a run, so they are computed once per dataset and reused by every
trial of a sweep: `reference_embeddings` writes ``<cache dir>/clfa_reference/<key>.npy`` (the cache
dir of `mmsa_core.data.tokenize.default_cache_dir`: ``$MMSA_CACHE_DIR`` or ``~/.cache/mmsa_core``),
keyed by a hash of every text, the encoder's identity and files (weights, config, tokenizer), the
maximum length and this recipe's version; a write is atomic (temp file + rename), so concurrent trials
never read half a file, and an unreadable file is rebuilt. A cache hit returns the same float32 array a
miss computes, so a run's numbers do not depend on whether the cache was warm.

The encoder is built under a forked RNG seeded with `REFERENCE_SEED`: the random weights of the
``tiny`` test encoder are the same in every process, and building it never moves the run's own RNG
(the trainable model is initialised identically whether the cache was hit or not).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmsa_core.data.tokenize import default_cache_dir
from mmsa_core.models.text_encoder import (TINY_BERT, TextEncoderSpec, build_text_encoder, load_tokenizer,
                                           resolve_text_encoder)

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["REFERENCE_SEED", "ENCODE_BATCH", "cache_path", "reference_width", "build_reference_encoder",
           "encode_texts", "reference_embeddings"]

log = logging.getLogger(__name__)

REFERENCE_SEED = 0  # the tiny encoder's random weights (and any randomly initialised pooler) come from it
ENCODE_BATCH = 64  # texts per no-grad forward pass
_CACHE_VERSION = "1"  # bump when the recipe changes: old files are then never read
_MODEL_SUFFIXES = (".json", ".txt", ".model", ".safetensors", ".bin")


def _encoder_config(spec: TextEncoderSpec) -> dict:
    if spec.model_dir is None:
        return dict(TINY_BERT)
    return json.loads((Path(spec.model_dir) / "config.json").read_text())


def reference_width(spec: TextEncoderSpec) -> int:
    """Width of the reference embedding (the encoder's hidden size), read without loading weights."""
    return int(_encoder_config(spec)["hidden_size"])


def _max_len(spec: TextEncoderSpec, max_len: int) -> int:
    """`max_len`, capped at the encoder's position table (the tiny encoder has 128 positions)."""
    positions = _encoder_config(spec).get("max_position_embeddings")
    return min(int(max_len), int(positions)) if positions else int(max_len)


def build_reference_encoder(spec: TextEncoderSpec) -> "nn.Module":
    """The frozen encoder: eval mode, no parameter requires grad, built under a fixed, forked RNG."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(REFERENCE_SEED)
        encoder = build_text_encoder(spec)
    encoder.eval()
    encoder.requires_grad_(False)
    return encoder


def encode_texts(texts: Sequence[str], spec: TextEncoderSpec, *, max_len: int,
                 device: "torch.device | str" = "cpu", batch_size: int = ENCODE_BATCH) -> np.ndarray:
    """(N, D) float32 L2-normalised mean-pooled sentence embeddings of `texts` (no grad, eval mode).

    Texts are batched in order of length (less padding); the rows come back in the input order.
    """
    import torch

    texts = [str(t) for t in texts]
    tokenizer = load_tokenizer(spec)
    encoder = build_reference_encoder(spec).to(device)
    width = reference_width(spec)
    limit = _max_len(spec, max_len)
    out = np.zeros((len(texts), width), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
    with torch.no_grad(), torch.autocast(torch.device(device).type, enabled=False):
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            enc = tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=limit,
                            return_tensors="pt")
            enc = {k: v.to(device) for k, v in enc.items()}
            hidden = encoder(**enc).last_hidden_state.float()  # (B, L, D)
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)  # sentence-transformers' mean
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
            out[rows] = pooled.cpu().numpy()
    return out


def _cache_key(texts: Sequence[str], spec: TextEncoderSpec, max_len: int) -> str:
    h = hashlib.sha256()
    h.update(f"clfa-reference/{_CACHE_VERSION}/mean+l2/{spec.name}/{max_len}\n".encode())
    if spec.model_dir is None:  # random weights: their identity is the config and the seed
        h.update(f"random:{json.dumps(TINY_BERT, sort_keys=True)}:seed={REFERENCE_SEED}\n".encode())
    dirs = [Path(spec.tokenizer_dir)] + ([Path(spec.model_dir)] if spec.model_dir is not None else [])
    for d in dirs:
        h.update(f"dir:{d.resolve()}\n".encode())
        for f in sorted(d.iterdir()) if d.is_dir() else ():
            if f.is_file() and f.suffix in _MODEL_SUFFIXES:
                st = f.stat()
                h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    h.update(f"[{len(texts)}]".encode())
    for t in texts:
        b = str(t).encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()[:32]


def cache_path(texts: Sequence[str], spec: TextEncoderSpec, max_len: int, *,
               cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the embeddings of `texts` by `spec` are cached."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / "clfa_reference" / f"{_cache_key(texts, spec, _max_len(spec, max_len))}.npy"


def reference_embeddings(texts: Sequence[str], encoder: str | TextEncoderSpec, *, max_len: int = 256,
                         device: "torch.device | str" = "cpu",
                         cache_dir: str | os.PathLike[str] | None = None) -> np.ndarray:
    """(N, D) float32 reference embeddings of `texts`, read from the on-disk cache or computed once.

    `encoder`: ``minilm`` / ``tiny`` / a local Hugging Face directory, or a resolved spec.
    """
    spec = resolve_text_encoder(encoder) if isinstance(encoder, str) else encoder
    texts = [str(t) for t in texts]
    path = cache_path(texts, spec, max_len, cache_dir=cache_dir)
    width = reference_width(spec)
    if path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape == (len(texts), width) and cached.dtype == np.float32:
                log.debug("CLFA reference embeddings read from cache %s", path)
                return cached
            log.warning("ignoring CLFA reference cache %s: shape %s, expected %s", path, cached.shape,
                        (len(texts), width))
        except (OSError, ValueError) as exc:  # corrupt or partial: rebuild it
            log.warning("ignoring unreadable CLFA reference cache %s (%s)", path, exc)
    out = encode_texts(texts, spec, max_len=max_len, device=device)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".reference.", suffix=".npy", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            np.save(f, out, allow_pickle=False)
        os.replace(tmp, path)  # atomic: concurrent trials never read a half-written file
    except OSError as exc:
        log.warning("could not write the CLFA reference cache %s (%s); continuing without it", path, exc)
    return out
