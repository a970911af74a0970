"""Token ids for the text encoder: reuse an MMSA file's `text_bert`, or tokenize `raw_text` once.

MMSA files carry `text_bert` = (input ids, attention mask, token type ids) in the uncased BERT
WordPiece vocabulary. Those ids are reused as they are when the run's encoder uses that same
vocabulary (`uses_bert_uncased_vocab`: ``minilm``, ``tiny``, bert-base-uncased, ...); any other
encoder gets `raw_text` tokenized by its own tokenizer, cached on disk (`cached_tokenize`) under
``$MMSA_CACHE_DIR`` (default ``~/.cache/mmsa_core``) keyed by the texts, the tokenizer files and
the maximum length. `wordpiece_ids` is a small exact WordPiece for lower-case ASCII words, used by
the synthetic generator so it need not import transformers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mmsa_core.models.text_encoder import TextEncoderSpec

__all__ = [
    "BERT_UNCASED_VOCAB_SIZE", "CLS_ID", "SEP_ID", "MASK_ID", "PAD_ID", "default_cache_dir",
    "uses_bert_uncased_vocab", "fit_length", "tokenize_texts", "cached_tokenize", "wordpiece_ids",
]

log = logging.getLogger(__name__)

BERT_UNCASED_VOCAB_SIZE = 30522
PAD_ID, CLS_ID, SEP_ID, MASK_ID = 0, 101, 102, 103  # uncased BERT WordPiece special tokens
_FINGERPRINT = {101: "[CLS]", 102: "[SEP]", 103: "[MASK]", 0: "[PAD]", 7592: "hello", 1996: "the"}
_CACHE_VERSION = "1"

TokenArrays = tuple[np.ndarray, np.ndarray, np.ndarray]  # ids, mask, type: (N, L) int64 each


def default_cache_dir() -> Path:
    """``$MMSA_CACHE_DIR`` if set, else ``~/.cache/mmsa_core``."""
    env = os.environ.get("MMSA_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mmsa_core"


@lru_cache(maxsize=16)
def _vocab_is_bert_uncased(tokenizer_dir: str) -> bool | None:
    """From ``vocab.txt`` + ``tokenizer_config.json``; None when there is no vocab.txt."""
    d = Path(tokenizer_dir)
    vocab = d / "vocab.txt"
    if not vocab.is_file():
        return None
    lines = vocab.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != BERT_UNCASED_VOCAB_SIZE or any(lines[i] != t for i, t in _FINGERPRINT.items()):
        return False
    cfg = d / "tokenizer_config.json"
    if cfg.is_file():
        try:
            if json.loads(cfg.read_text()).get("do_lower_case", True) is False:
                return False
        except ValueError:
            return False
    return True


def uses_bert_uncased_vocab(spec: TextEncoderSpec) -> bool:
    """Whether the encoder's tokenizer is the uncased BERT WordPiece vocabulary of MMSA's `text_bert`."""
    found = _vocab_is_bert_uncased(str(Path(spec.tokenizer_dir).resolve()))
    if found is not None:
        return found
    from mmsa_core.models.text_encoder import load_tokenizer

    tok = load_tokenizer(spec)  # no vocab.txt (tokenizer.json only): ask the tokenizer itself
    try:
        ids = tok.convert_tokens_to_ids([_FINGERPRINT[i] for i in sorted(_FINGERPRINT)])
        return (len(tok) == BERT_UNCASED_VOCAB_SIZE and ids == sorted(_FINGERPRINT)
                and list(tok("Hello")["input_ids"]) == [CLS_ID, 7592, SEP_ID])
    except (KeyError, TypeError, ValueError):
        return False


def fit_length(ids: np.ndarray, mask: np.ndarray, types: np.ndarray, max_len: int) -> TokenArrays:
    """Truncate or zero-pad (N, L) token arrays to (N, max_len), keeping each sample's end token.

    A sequence longer than ``max_len`` keeps its first ``max_len - 1`` tokens and its own last
    real token (``[SEP]``), exactly what the tokenizer's truncation gives.
    """
    if max_len < 2:
        raise ValueError(f"max_text_len={max_len} must be >= 2 ([CLS] and [SEP])")
    n, length = ids.shape
    if length == max_len:
        return ids, mask, types
    if length < max_len:
        pad = ((0, 0), (0, max_len - length))
        return np.pad(ids, pad), np.pad(mask, pad), np.pad(types, pad)
    real = mask.sum(axis=1)
    out_ids, out_mask, out_types = ids[:, :max_len].copy(), mask[:, :max_len].copy(), types[:, :max_len].copy()
    cut = np.flatnonzero(real > max_len)
    if cut.size:
        out_ids[cut, max_len - 1] = ids[cut, real[cut] - 1]
    return out_ids, out_mask, out_types


def tokenize_texts(texts: Sequence[str], spec: TextEncoderSpec, max_len: int) -> TokenArrays:
    """Tokenize with the encoder's own tokenizer to (N, max_len) int64 ids / mask / type ids."""
    from mmsa_core.models.text_encoder import load_tokenizer

    tok = load_tokenizer(spec)
    if tok.pad_token is None:
        raise ValueError(f"text encoder {spec.name!r}: its tokenizer has no padding token")
    enc = tok(list(texts), padding="max_length", truncation=True, max_length=max_len,
              return_attention_mask=True, return_token_type_ids=True)
    ids = np.asarray(enc["input_ids"], dtype=np.int64).reshape(len(texts), max_len)
    mask = np.asarray(enc["attention_mask"], dtype=np.int64).reshape(len(texts), max_len)
    types = enc.get("token_type_ids")
    types = (np.zeros_like(ids) if types is None
             else np.asarray(types, dtype=np.int64).reshape(len(texts), max_len))
    return ids, mask, types


def _cache_key(texts: Mapping[str, Sequence[str]], spec: TextEncoderSpec, max_len: int) -> str:
    h = hashlib.sha256()
    h.update(f"mmsa-tokens/{_CACHE_VERSION}/{spec.cache_key}/{max_len}\n".encode())
    tok_dir = Path(spec.tokenizer_dir)
    for f in sorted(tok_dir.iterdir()) if tok_dir.is_dir() else ():
        if f.is_file() and f.suffix in (".txt", ".json", ".model"):  # tokenizer files, not weights
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    for split, values in texts.items():
        h.update(f"[{split}:{len(values)}]".encode())
        for t in values:
            b = t.encode("utf-8", "surrogatepass")
            h.update(len(b).to_bytes(8, "little"))
            h.update(b)
    return h.hexdigest()[:32]


def cached_tokenize(texts: Mapping[str, Sequence[str]], spec: TextEncoderSpec, max_len: int, *,
                    cache_dir: str | os.PathLike[str] | None = None) -> dict[str, TokenArrays]:
    """Tokenize each split's texts, reusing ``<cache_dir>/tokens/<key>.npz`` when present.

    The key hashes every text, the tokenizer's identity and files, and ``max_len``; so a changed
    file, another tokenizer or another length never reuses stale ids.
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path = root / "tokens" / f"{_cache_key(texts, spec, max_len)}.npz"
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as npz:
                out = {s: (npz[f"{s}/ids"], npz[f"{s}/mask"], npz[f"{s}/type"]) for s in texts}
            log.debug("token ids read from cache %s", path)
            return out
        except (OSError, KeyError, ValueError) as exc:  # corrupt or partial: rebuild it
            log.warning("ignoring unreadable token cache %s (%s)", path, exc)
    out = {s: tokenize_texts(list(t), spec, max_len) for s, t in texts.items()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tokens.", suffix=".npz", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{f"{s}/{k}": a for s, arrs in out.items() for k, a in zip(("ids", "mask", "type"), arrs)})
        os.replace(tmp, path)  # atomic: concurrent trials never read a half-written file
    except OSError as exc:
        log.warning("could not write the token cache %s (%s); continuing without it", path, exc)
    return out


# --- exact WordPiece for the synthetic generator's plain lower-case words ---------------------------
@lru_cache(maxsize=4)
def _vocab_index(vocab_file: str) -> dict[str, int]:
    lines = Path(vocab_file).read_text(encoding="utf-8").split("\n")
    return {tok: i for i, tok in enumerate(lines) if tok}


def wordpiece_ids(word: str, vocab_file: str | os.PathLike[str]) -> list[int]:
    """Greedy longest-match WordPiece of one lower-case ASCII word (what BERT's tokenizer does)."""
    if not word or not (word.isascii() and word.isalpha() and word.islower()):
        raise ValueError(f"wordpiece_ids handles lower-case ASCII letters only, got {word!r}")
    vocab = _vocab_index(str(vocab_file))
    out: list[int] = []
    start = 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                out.append(vocab[piece])
                break
            end -= 1
        else:
            return [vocab["[UNK]"]]
        start = end
    return out
