"""Checks on MMSA data before anything trains: every problem found, in one message.

`validate_raw(raw, source=...)` checks a file's raw dict layout (splits, keys, N, shapes, widths,
lengths, NaN); `validate_dataset(data)` checks a built `MSADataset` against expected widths (e.g.
those a run configuration assumes). Both raise `DataValidationError`, whose message has one line
per problem, each naming the file, split, key and the shape found / expected.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from mmsa_core.data.arrays import MSADataset

__all__ = ["DataValidationError", "validate_raw", "validate_dataset", "REQUIRED_SPLITS", "REQUIRED_KEYS"]

REQUIRED_SPLITS: tuple[str, ...] = ("train", "valid", "test")
REQUIRED_KEYS: tuple[str, ...] = ("id", "raw_text", "audio", "vision", "regression_labels")
FEATURE_KEYS: tuple[str, ...] = ("audio", "vision")
LENGTH_KEYS: dict[str, str] = {"audio_lengths": "audio", "vision_lengths": "vision"}
_SHOW = 5  # indices shown per problem


class DataValidationError(ValueError):
    """Every problem found in a data source; ``.problems`` holds the lines, ``.source`` the file."""

    def __init__(self, source: str, problems: Iterable[str]) -> None:
        self.source = str(source)
        self.problems = list(problems)
        head = f"{self.source}: {len(self.problems)} data problem(s):"
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems)]))


def _first(mask: np.ndarray) -> str:
    idx = np.flatnonzero(mask)
    shown = ", ".join(str(i) for i in idx[:_SHOW])
    return f"[{shown}{', ...' if idx.size > _SHOW else ''}]"


def _shape(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return str(tuple(value.shape))
    if isinstance(value, (list, tuple)):
        return f"list of {len(value)}"
    return type(value).__name__


def _length(value: Any) -> int | None:
    if isinstance(value, np.ndarray):
        return int(value.shape[0]) if value.ndim >= 1 else None
    if isinstance(value, (list, tuple)):
        return len(value)
    return None


def _per_sample(x: np.ndarray, test: Any) -> np.ndarray:
    """(N,) bool: ``test(x)`` holds anywhere in sample i; chunked so big files need little memory."""
    out = np.zeros(x.shape[0], dtype=bool)
    if x.size == 0:
        return out
    step = max(1, (1 << 24) // max(1, int(np.prod(x.shape[1:]))))
    for i in range(0, x.shape[0], step):
        out[i:i + step] = test(x[i:i + step]).reshape(min(step, x.shape[0] - i), -1).any(axis=1)
    return out


def _check_expected_dims(expected_dims: Mapping[str, int] | None) -> dict[str, int]:
    dims = dict(expected_dims or {})
    unknown = sorted(set(dims) - set(FEATURE_KEYS))
    if unknown:
        raise ValueError(f"expected_dims has unknown key(s) {unknown}; valid: {list(FEATURE_KEYS)}")
    return dims


def validate_raw(raw: Any, *, source: str, expected_dims: Mapping[str, int] | None = None) -> None:
    """Check an MMSA dict (``{'train'|'valid'|'test': {key: array}}``); raise on any problem.

    Checked: the three splits exist and are dicts; required keys (`REQUIRED_KEYS`) exist; every
    key of a split has the same N; labels are 1-D, numeric and finite; `audio`/`vision` are 3-D
    numeric arrays without NaN or +inf (-inf is allowed: the loader sets it to 0) whose feature
    width equals ``expected_dims[key]`` when given and is the same in every split; `text_bert`
    is (N, 3, L) of non-negative integers with a 0/1 mask; lengths are integers in [0, L].
    """
    dims = _check_expected_dims(expected_dims)
    problems: list[str] = []
    if not isinstance(raw, Mapping):
        raise DataValidationError(source, [f"{source}: top level is {type(raw).__name__}, "
                                           f"expected a dict with splits {list(REQUIRED_SPLITS)}"])
    widths: dict[str, dict[str, int]] = {k: {} for k in FEATURE_KEYS}
    for split in REQUIRED_SPLITS:
        if split not in raw:
            problems.append(f"{source}: split {split!r} is missing (found splits {sorted(map(str, raw))}; "
                            f"expected {list(REQUIRED_SPLITS)})")
            continue
        fields = raw[split]
        if not isinstance(fields, Mapping):
            problems.append(f"{source}: split {split!r} is {type(fields).__name__}, expected a dict of arrays")
            continue
        problems.extend(_split_problems(fields, source=source, split=split, dims=dims, widths=widths))
    for key, per_split in widths.items():
        if len(set(per_split.values())) > 1:
            listed = ", ".join(f"{s} {w}" for s, w in per_split.items())
            problems.append(f"{source}: key {key!r}: feature width differs between splits ({listed})")
    if problems:
        raise DataValidationError(source, problems)


def _split_problems(fields: Mapping[str, Any], *, source: str, split: str, dims: dict[str, int],
                    widths: dict[str, dict[str, int]]) -> list[str]:
    where = f"{source}: split {split!r}"
    out: list[str] = []
    missing = [k for k in REQUIRED_KEYS if k not in fields]
    for key in missing:
        out.append(f"{where}: required key {key!r} is missing (keys present: {sorted(fields)})")

    # -- one N for every key ---------------------------------------------------------------------
    lengths = {k: _length(v) for k, v in fields.items()}
    ref_key = "regression_labels" if lengths.get("regression_labels") is not None else None
    if ref_key is None:
        known = [k for k, n in lengths.items() if n is not None]
        ref_key = known[0] if known else None
    n = lengths[ref_key] if ref_key is not None else None
    for key, n_k in lengths.items():
        if n is not None and n_k is not None and n_k != n:
            out.append(f"{where}: key {key!r} has N={n_k} (shape {_shape(fields[key])}) but "
                       f"{ref_key!r} has N={n}")

    # -- labels ----------------------------------------------------------------------------------
    if "regression_labels" in fields:
        y = np.asarray(fields["regression_labels"])
        if y.dtype.kind not in "biuf":
            out.append(f"{where}: key 'regression_labels' has dtype {y.dtype}, expected numbers")
        elif not (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)):
            out.append(f"{where}: key 'regression_labels' has shape {y.shape}, expected (N,)")
        else:
            bad = ~np.isfinite(y.reshape(-1).astype(np.float64))
            if bad.any():
                out.append(f"{where}: key 'regression_labels' (shape {y.shape}) has {int(bad.sum())} "
                           f"NaN/inf label(s) at indices {_first(bad)}")

    # -- acoustic / visual features ---------------------------------------------------------------
    padded: dict[str, int] = {}
    for key in FEATURE_KEYS:
        if key not in fields:
            continue
        x = fields[key]
        if not isinstance(x, np.ndarray) or x.dtype.kind not in "biuf":
            what = f"dtype {x.dtype}" if isinstance(x, np.ndarray) else type(x).__name__
            out.append(f"{where}: key {key!r} is {what}, expected a float array (N, L, d)")
            continue
        if x.ndim != 3:
            out.append(f"{where}: key {key!r} has shape {x.shape} (ndim {x.ndim}), expected (N, L, d)")
            continue
        padded[key] = x.shape[1]
        widths[key][split] = x.shape[2]
        if key in dims and x.shape[2] != dims[key]:
            out.append(f"{where}: key {key!r} has shape {x.shape}: feature width {x.shape[2]}, "
                       f"expected {dims[key]}")
        if x.dtype.kind == "f":
            nan = _per_sample(x, np.isnan)
            if nan.any():
                out.append(f"{where}: key {key!r} (shape {x.shape}) has NaN values in "
                           f"{int(nan.sum())} sample(s) at indices {_first(nan)}")
            pinf = _per_sample(x, np.isposinf)
            if pinf.any():
                out.append(f"{where}: key {key!r} (shape {x.shape}) has +inf values in "
                           f"{int(pinf.sum())} sample(s) at indices {_first(pinf)}")

    # -- lengths ---------------------------------------------------------------------------------
    for lkey, fkey in LENGTH_KEYS.items():
        if lkey not in fields:
            continue
        try:
            lens = np.asarray(fields[lkey], dtype=np.float64)
        except (TypeError, ValueError):
            out.append(f"{where}: key {lkey!r} ({_shape(fields[lkey])}) is not numeric")
            continue
        if lens.ndim != 1:
            out.append(f"{where}: key {lkey!r} has shape {lens.shape}, expected (N,)")
            continue
        frac = ~np.isfinite(lens) | (lens != np.round(lens))
        if frac.any():
            out.append(f"{where}: key {lkey!r} has {int(frac.sum())} non-integer length(s) at "
                       f"indices {_first(frac)}")
        neg = lens < 0
        if neg.any():
            out.append(f"{where}: key {lkey!r} has {int(neg.sum())} negative length(s) at "
                       f"indices {_first(neg)}")
        if fkey in padded:
            over = lens > padded[fkey]
            if over.any():
                out.append(f"{where}: key {lkey!r} has {int(over.sum())} length(s) above the padded "
                           f"length {padded[fkey]} of {fkey!r} (shape {fields[fkey].shape}), max "
                           f"{int(lens[over].max())}, at indices {_first(over)}")

    # -- tokens ----------------------------------------------------------------------------------
    if "text_bert" in fields:
        tb = fields["text_bert"]
        if not isinstance(tb, np.ndarray) or tb.dtype.kind not in "biuf":
            out.append(f"{where}: key 'text_bert' is {type(tb).__name__}, expected a numeric array (N, 3, L)")
        elif tb.ndim != 3 or tb.shape[1] != 3:
            out.append(f"{where}: key 'text_bert' has shape {tb.shape}, expected (N, 3, L) "
                       "(input ids, attention mask, token type ids)")
        else:
            ids, mask = tb[:, 0].astype(np.float64), tb[:, 1]
            bad_ids = ((ids < 0) | (ids != np.round(ids))).any(axis=1)
            if bad_ids.any():
                out.append(f"{where}: key 'text_bert' (shape {tb.shape}) has negative or non-integer "
                           f"token ids in {int(bad_ids.sum())} sample(s) at indices {_first(bad_ids)}")
            bad_mask = ~np.isin(mask, (0, 1)).all(axis=1)
            if bad_mask.any():
                out.append(f"{where}: key 'text_bert' (shape {tb.shape}) has an attention mask "
                           f"other than 0/1 in {int(bad_mask.sum())} sample(s) at indices {_first(bad_mask)}")

    # -- strings ---------------------------------------------------------------------------------
    for key in ("id", "raw_text"):
        if key not in fields:
            continue
        values = fields[key]
        seq = values.ravel().tolist() if isinstance(values, np.ndarray) else values
        if not isinstance(seq, (list, tuple)):
            out.append(f"{where}: key {key!r} is {type(values).__name__}, expected N strings")
            continue
        bad = np.array([not isinstance(v, (str, bytes)) for v in seq], dtype=bool)
        if bad.any():
            out.append(f"{where}: key {key!r} ({_shape(values)}) has {int(bad.sum())} non-string "
                       f"value(s) at indices {_first(bad)}")
    return out


def validate_dataset(data: MSADataset, *, expected_dims: Mapping[str, int] | None = None,
                     text_len: int | None = None) -> None:
    """Check a built `MSADataset` (e.g. against the widths a configuration expects).

    Checked per split: array dtypes and shapes of the data contract, one N, finite features and
    labels, lengths in [0, L], feature widths equal to ``expected_dims`` (``{'audio': 5, ...}``)
    and the same across splits, token length equal to ``text_len`` when given.
    """
    dims = _check_expected_dims(expected_dims)
    src = data.source
    problems: list[str] = []
    for split in REQUIRED_SPLITS:
        if split not in data.splits:
            problems.append(f"{src}: split {split!r} is missing")
    for split, s in data.splits.items():
        where = f"{src}: split {split!r}"
        n = s.labels.shape[0]
        for key in ("text_ids", "text_mask", "text_type", "audio", "audio_lengths", "vision",
                    "vision_lengths", "labels", "ids", "raw_text"):
            arr = getattr(s, key)
            if arr.shape[0] != n:
                problems.append(f"{where}: key {key!r} has N={arr.shape[0]} (shape {arr.shape}) "
                                f"but 'labels' has N={n}")
        for key in ("text_ids", "text_mask", "text_type"):
            arr = getattr(s, key)
            if arr.dtype != np.int64 or arr.ndim != 2:
                problems.append(f"{where}: key {key!r} is {arr.dtype} {arr.shape}, expected int64 (N, L_t)")
            elif text_len is not None and arr.shape[1] != text_len:
                problems.append(f"{where}: key {key!r} has shape {arr.shape}: token length "
                                f"{arr.shape[1]}, expected {text_len}")
        for key in FEATURE_KEYS:
            x = getattr(s, key)
            lens = getattr(s, f"{key}_lengths")
            if x.dtype != np.float32 or x.ndim != 3:
                problems.append(f"{where}: key {key!r} is {x.dtype} {x.shape}, expected float32 (N, L, d)")
                continue
            if key in dims and x.shape[2] != dims[key]:
                problems.append(f"{where}: key {key!r} has shape {x.shape}: feature width "
                                f"{x.shape[2]}, expected {dims[key]}")
            bad = _per_sample(x, lambda c: ~np.isfinite(c))
            if bad.any():
                problems.append(f"{where}: key {key!r} (shape {x.shape}) has non-finite values in "
                                f"{int(bad.sum())} sample(s) at indices {_first(bad)}")
            out_of_range = (lens < 0) | (lens > x.shape[1])
            if out_of_range.any():
                problems.append(f"{where}: key '{key}_lengths' has {int(out_of_range.sum())} value(s) "
                                f"outside [0, {x.shape[1]}] at indices {_first(out_of_range)}")
        bad_y = ~np.isfinite(s.labels)
        if bad_y.any():
            problems.append(f"{where}: key 'labels' (shape {s.labels.shape}) has {int(bad_y.sum())} "
                            f"NaN/inf label(s) at indices {_first(bad_y)}")
    for key in FEATURE_KEYS:
        per = {split: getattr(s, key).shape[-1] for split, s in data.splits.items()}
        if len(set(per.values())) > 1:
            listed = ", ".join(f"{sp} {w}" for sp, w in per.items())
            problems.append(f"{src}: key {key!r}: feature width differs between splits ({listed})")
    if problems:
        raise DataValidationError(src, problems)
