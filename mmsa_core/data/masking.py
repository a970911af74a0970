"""The field's missing-modality masking (MMSA's ``generate_m``), for evaluation copies of a split.

The MSA papers that report robustness to incomplete modalities (TFR-Net, EMT-DLFR, LNLN) all mask
with the MMSA framework's ``data_loader.py`` / ``generate_m`` (docs/METRICS.md, Missing-modality robustness). This
module follows it, so a robustness curve of this project can sit beside theirs:

- **Token / frame dropping at rate r** (`masked_split`). Each valid position is dropped
  independently: ``keep = U(0,1) > r``. Text: positions 0 and length − 1 ([CLS], [SEP]) are always
  kept; a dropped token's id becomes the tokenizer's unk id (100 = [UNK] of the uncased BERT
  vocabulary; pass the run's, `tokenizer_unk_id`); the attention mask and token types are
  unchanged. Acoustic / visual: a dropped frame's features become 0; lengths are unchanged (valid
  frames stay first). The same r for T, A and V; ``modalities`` masks a subset (e.g. ``"av"``).
- **Seeds**: the uniforms come from one seed per modality, ``(111, 1111, 11111)`` for (T, A, V),
  drawn over the split's whole padded array shape ((N, L_t), (N, L_a), (N, L_v)) exactly as MMSA
  does (``np.random.seed(seed); np.random.uniform(size=mask.shape)``); a private
  ``np.random.RandomState(seed)`` gives the same stream and leaves NumPy's global RNG alone. The
  masks are therefore fixed per sample and split, and nested across rates (one set of draws serves
  every r: ``dropped(r1) ⊆ dropped(r2)`` for r1 < r2). r = 0 leaves the split unchanged (also the
  measure-zero draw U = 0.0, which MMSA would drop); r = 1 drops every droppable position.
- **Whole-modality drop** (`absent_split`): the second kind of the protocol's extra table (A absent,
  V absent, A + V absent). Every frame of the stream is zeroed and, by default, its length set to 0:
  the stream encoders key-pad by length, so an absent stream contributes only its learned [CLS]
  state — a stream that is *not there*, which frame masking at r = 1 (zeros, lengths kept, so the
  encoder still sees how long the missing stream was, through the positions it attends) is not.
  ``keep_lengths=True`` gives that r = 1 reading instead. Text cannot be absent (the project always
  uses text; text at r = 1 is `masked_split(rate=1.0, modalities="t")`).

Two deliberate differences from MMSA's code, neither of which changes a mask: MMSA rewrites
padding token ids to 0 (``missing_mask * ids + 100 * (mask − missing_mask)``) — here they are left as
they are (0 = [PAD] in every BERT vocabulary this project reads); and a text row with no real token
(impossible in MMSA files) has nothing droppable here, where MMSA's ``argmin`` would corrupt its ids.
Note that this project z-normalises acoustic / visual features with train statistics when it loads
them, so a zeroed frame holds the train mean (MMSA zeroes the raw features).

Training batches (MM-CKD's students draw a fresh mask per batch) use the torch twin of these rules,
`mmsa_core.data.masking_torch.mask_batch` / `drop_batch_modalities`. The split keeps
``import mmsa_core.data.masking`` torch-free, as ``mmsa_core.data`` is (cf. ``dataset`` / ``batching``).
The older `mmsa_core.data.corruption` path ([MASK] ids, counter-based draws) is a different protocol.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mmsa_core.data.arrays import MSADataset, SplitArrays

__all__ = [
    "RATES", "DEFAULT_SEEDS", "UNK_ID", "MASK_MODALITIES", "check_rate", "check_modalities",
    "uniform_draws", "droppable", "dropped_positions", "masked_split", "masked_dataset",
    "absent_split", "tokenizer_unk_id",
]  # and, lazily (PEP 562 __getattr__, imports torch): mask_batch, drop_batch_modalities

RATES: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))  # 0.0, 0.1, ..., 1.0
DEFAULT_SEEDS: tuple[int, int, int] = (111, 1111, 11111)  # (T, A, V), MMSA's missing_seed
UNK_ID = 100  # [UNK] of the uncased BERT WordPiece vocabulary
MASK_MODALITIES = "tav"
_FRAMES = {"a": ("audio", "audio_lengths"), "v": ("vision", "vision_lengths")}


# ---------------------------------------------------------------------------------------------
# argument checks (shared with the torch twin)


def check_rate(rate: Any, *, name: str = "rate") -> float:
    """`rate` as a float in [0, 1]; a ValueError naming `name` otherwise."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.floating, np.integer)) \
            or not math.isfinite(float(rate)) or not 0.0 <= float(rate) <= 1.0:
        raise ValueError(f"{name}={rate!r} must be a number in [0, 1]")
    return float(rate)


def check_modalities(modalities: Any, *, allowed: str = MASK_MODALITIES, name: str = "modalities") -> str:
    """`modalities` as a canonical-order subset of `allowed` ("va" -> "av"); "" is allowed."""
    if not isinstance(modalities, str) or any(m not in allowed for m in modalities) \
            or len(set(modalities)) != len(modalities):
        raise ValueError(f"{name}={modalities!r} must be a subset of {allowed!r} without repeats")
    return "".join(m for m in allowed if m in modalities)


def _check_seeds(seeds: Any) -> tuple[int, int, int]:
    try:
        out = tuple(int(s) for s in seeds)
    except TypeError:
        out = ()
    if len(out) != 3 or any(s < 0 or s >= 2**32 for s in out) \
            or any(isinstance(s, bool) for s in seeds):
        raise ValueError(f"seeds={seeds!r} must be three integers in [0, 2**32), one per modality (T, A, V)")
    return out  # type: ignore[return-value]


def _check_unk(unk_id: Any) -> int:
    if isinstance(unk_id, bool) or not isinstance(unk_id, (int, np.integer)) or unk_id < 0:
        raise ValueError(f"unk_id={unk_id!r} must be a non-negative integer token id")
    return int(unk_id)


# ---------------------------------------------------------------------------------------------
# the masks


def _shape(split: "SplitArrays", m: str) -> tuple[int, int]:
    if m == "t":
        return tuple(split.text_ids.shape[:2])  # type: ignore[return-value]
    return tuple(getattr(split, _FRAMES[m][0]).shape[:2])  # type: ignore[return-value]


def uniform_draws(split: "SplitArrays", *, seeds: Sequence[int] = DEFAULT_SEEDS,
                  modalities: str = MASK_MODALITIES) -> dict[str, np.ndarray]:
    """MMSA's uniforms: ``{m: RandomState(seed_m).uniform(size=(N, L_m))}`` (float64, in [0, 1)).

    One seed per modality (T, A, V), over the split's whole padded shape; the same draws serve every
    rate, which is what makes the masks nested.
    """
    seeds = _check_seeds(seeds)
    modalities = check_modalities(modalities)
    seed_of = dict(zip(MASK_MODALITIES, seeds))
    return {m: np.random.RandomState(seed_of[m]).uniform(size=_shape(split, m)) for m in modalities}


def droppable(split: "SplitArrays", modalities: str = MASK_MODALITIES) -> dict[str, np.ndarray]:
    """``{m: (N, L_m) bool}``: the positions masking may drop.

    Text: real tokens (``text_mask == 1``) except position 0 ([CLS]) and length − 1 (the final
    [SEP]), length = number of real tokens. Acoustic / visual: the valid frames (``pos < length``).
    """
    modalities = check_modalities(modalities)
    out: dict[str, np.ndarray] = {}
    for m in modalities:
        if m == "t":
            mask = np.asarray(split.text_mask) != 0
            length = mask.sum(axis=1)
            pos = np.arange(mask.shape[1])[None, :]
            out[m] = mask & (pos != 0) & (pos != (length - 1)[:, None])
        else:
            frames, lengths = _FRAMES[m]
            width = getattr(split, frames).shape[1]
            out[m] = np.arange(width)[None, :] < np.asarray(getattr(split, lengths))[:, None]
    return out


def _drop(u: np.ndarray, can: np.ndarray, rate: float) -> np.ndarray:
    """MMSA's rule ``keep = U > r`` among the droppable positions; nothing at r = 0."""
    if rate == 0.0:
        return np.zeros_like(can)
    return can & ~(u > rate)


def dropped_positions(split: "SplitArrays", rate: float, *, seeds: Sequence[int] = DEFAULT_SEEDS,
                      modalities: str = MASK_MODALITIES,
                      draws: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """``{m: (N, L_m) bool}``: the positions `masked_split` drops at `rate` (True = dropped).

    `draws` (from `uniform_draws`) saves redrawing when many rates are evaluated on one split.
    """
    rate = check_rate(rate)
    modalities = check_modalities(modalities)
    if draws is None:
        draws = uniform_draws(split, seeds=seeds, modalities=modalities)
    missing = [m for m in modalities if m not in draws]
    if missing:
        raise ValueError(f"draws has no uniforms for modalities {missing}")
    can = droppable(split, modalities)
    out = {}
    for m in modalities:
        u = np.asarray(draws[m])
        if u.shape != can[m].shape:
            raise ValueError(f"draws[{m!r}] has shape {u.shape}, the split's {m} positions {can[m].shape}")
        out[m] = _drop(u, can[m], rate)
    return out


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def masked_split(split: "SplitArrays", rate: float, *, seeds: Sequence[int] = DEFAULT_SEEDS,
                 unk_id: int = UNK_ID, modalities: str = MASK_MODALITIES,
                 draws: Mapping[str, np.ndarray] | None = None) -> "SplitArrays":
    """An evaluation copy of `split` with MMSA's token / frame masking at `rate`.

    Dropped tokens -> `unk_id`, dropped frames -> 0; masks, token types, lengths, labels unchanged.
    The arrays that change are new (read-only) arrays; `split` is never modified. r = 0 returns
    `split` itself (nothing to change).
    """
    rate = check_rate(rate)
    unk_id = _check_unk(unk_id)
    modalities = check_modalities(modalities)
    if rate == 0.0:
        return split
    hit = dropped_positions(split, rate, seeds=seeds, modalities=modalities, draws=draws)
    changes: dict[str, np.ndarray] = {}
    if "t" in hit:
        ids = np.asarray(split.text_ids)
        changes["text_ids"] = _readonly(np.where(hit["t"], np.asarray(unk_id, dtype=ids.dtype), ids))
    for m in ("a", "v"):
        if m in hit:
            key = _FRAMES[m][0]
            x = np.asarray(getattr(split, key))
            changes[key] = _readonly(np.where(hit[m][:, :, None], np.zeros((), dtype=x.dtype), x))
    return dataclasses.replace(split, **changes)


def masked_dataset(data: "MSADataset", rate: float, *, splits: Sequence[str] = ("train", "valid", "test"),
                   seeds: Sequence[int] = DEFAULT_SEEDS, unk_id: int = UNK_ID,
                   modalities: str = MASK_MODALITIES) -> "MSADataset":
    """`data` with `masked_split` applied to each of `splits` (the others unchanged).

    MMSA masks every split with the same seeds, each over its own shape (the "retrain per rate"
    protocol masks train, valid and test; "train once" masks only test).
    """
    unknown = [s for s in splits if s not in data.splits]
    if unknown:
        raise ValueError(f"splits {unknown} are not in the dataset (it has {sorted(data.splits)})")
    new = {name: (masked_split(arrays, rate, seeds=seeds, unk_id=unk_id, modalities=modalities)
                  if name in splits else arrays) for name, arrays in data.splits.items()}
    return dataclasses.replace(data, splits=new)


def absent_split(split: "SplitArrays", modalities: str = "av", *, keep_lengths: bool = False) -> "SplitArrays":
    """An evaluation copy of `split` whose acoustic and/or visual streams are absent.

    Every frame of each listed stream becomes 0 and its length 0 (``keep_lengths=True``: lengths
    kept, the same as frame masking at r = 1). `modalities` is a non-empty subset of "av".
    """
    modalities = check_modalities(modalities, allowed="av")
    if not modalities:
        raise ValueError("modalities='' names no stream to remove; use a non-empty subset of 'av'")
    changes: dict[str, np.ndarray] = {}
    for m in modalities:
        frames, lengths = _FRAMES[m]
        changes[frames] = _readonly(np.zeros_like(getattr(split, frames)))
        if not keep_lengths:
            changes[lengths] = _readonly(np.zeros_like(getattr(split, lengths)))
    return dataclasses.replace(split, **changes)


@functools.lru_cache(maxsize=16)
def tokenizer_unk_id(text_encoder: str) -> int:
    """The unk id of a text encoder's tokenizer (``minilm`` / ``tiny``: 100); loads the tokenizer
    once per encoder name (cached)."""
    from mmsa_core.models.text_encoder import load_tokenizer, resolve_text_encoder

    unk = load_tokenizer(resolve_text_encoder(text_encoder)).unk_token_id
    if unk is None:
        raise ValueError(f"text encoder {text_encoder!r}: its tokenizer has no unk token; pass unk_id explicitly")
    return int(unk)

