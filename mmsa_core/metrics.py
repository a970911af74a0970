"""Evaluation metrics of multimodal sentiment regression, matching MMSA's ``utils/metricsTop.py``.

- ``regression_metrics(pred, true)``: CMU-MOSI / CMU-MOSEI (scores in [−3, 3]); keys ``METRIC_KEYS``.
- ``sims_metrics(pred, true)``: CH-SIMS style data (scores in [−1, 1]); keys ``SIMS_METRIC_KEYS``.
- ``HIGHER_IS_BETTER``: metric key -> direction (MAE is the only lower-is-better metric).

Definitions are the field's (docs/METRICS.md). Deliberate differences from MMSA, none of
which changes a value MMSA defines:

- values are plain, unrounded Python floats (MMSA rounds MOSI/MOSEI results to 4 decimals for
  display; rounding belongs in reports) and raw fractions (×100 only when printed);
- MAE is accumulated in float64 (MMSA averages in the input's float32: differences ~1e-7);
- degenerate inputs where MMSA returns NaN or crashes return 0.0 instead, because NaN breaks sweep
  objectives and model selection: Pearson correlation when either side is constant (or N = 1),
  and acc2_non0 / f1_non0 when every target is exactly 0 (empty subset);
- non-finite or empty inputs raise ``ValueError``.

Accepts NumPy arrays, sequences or torch tensors (converted lazily; torch is not imported here).
Tests: ``pytest tests/core/test_metrics.py``.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from sklearn.metrics import f1_score

__all__ = ["METRIC_KEYS", "SIMS_METRIC_KEYS", "HIGHER_IS_BETTER", "regression_metrics", "sims_metrics"]

METRIC_KEYS: tuple[str, ...] = ("mae", "corr", "acc7", "acc5", "acc2_has0", "f1_has0", "acc2_non0", "f1_non0")
SIMS_METRIC_KEYS: tuple[str, ...] = ("mae", "corr", "acc2", "acc3", "acc5", "f1")
HIGHER_IS_BETTER: Mapping[str, bool] = {k: k != "mae" for k in dict.fromkeys(METRIC_KEYS + SIMS_METRIC_KEYS)}

# CH-SIMS class edges inside [−1, 1]; class i = (edge[i−1], edge[i]] as in MMSA (lowest class closed at −1).
_SIMS_EDGES = {2: (0.0,), 3: (-0.1, 0.1), 5: (-0.7, -0.1, 0.1, 0.7)}


def _flat(x: Any, name: str) -> np.ndarray:
    """1-D float array from a NumPy array, a sequence or a torch tensor (any device)."""
    if hasattr(x, "detach"):  # torch tensor, converted without importing torch here
        x = x.detach().cpu()
        if str(x.dtype) in ("torch.float16", "torch.bfloat16"):
            x = x.float()
    arr = np.asarray(x).reshape(-1)
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has {int(np.sum(~np.isfinite(arr)))} non-finite value(s)")
    return arr


def _pair(pred: Any, true: Any) -> tuple[np.ndarray, np.ndarray]:
    p, t = _flat(pred, "pred"), _flat(true, "true")
    if p.shape != t.shape:
        raise ValueError(f"pred has {p.size} values, true has {t.size}")
    return p, t


def _pearson(p: np.ndarray, t: np.ndarray) -> float:
    """np.corrcoef(p, t)[0, 1]; 0.0 where it is undefined (a constant side, e.g. N = 1)."""
    if np.ptp(p) == 0 or np.ptp(t) == 0:
        return 0.0
    return float(np.corrcoef(p, t)[0, 1])


def _mae(p: np.ndarray, t: np.ndarray) -> float:
    return float(np.mean(np.abs(p.astype(np.float64) - t.astype(np.float64))))


def _acc(p: np.ndarray, t: np.ndarray) -> float:
    return float(np.mean(p == t))


def _weighted_f1(t: np.ndarray, p: np.ndarray) -> float:
    # zero_division=0 is the value MMSA gets with sklearn's default "warn", minus the warning.
    return float(f1_score(t, p, average="weighted", zero_division=0))


def _rounded_class(x: np.ndarray, bound: float) -> np.ndarray:
    """MMSA's multiclass bins: clip to [−bound, bound], then NumPy round-half-to-even (0.5 -> 0, 1.5 -> 2)."""
    return np.round(np.clip(x, -bound, bound))


def regression_metrics(pred: Any, true: Any) -> dict[str, float]:
    """MOSI / MOSEI metrics (MMSA ``__eval_mosei_regression``), keys ``METRIC_KEYS``.

    - ``mae``: mean |p − t|; ``corr``: Pearson r (0.0 when either side is constant);
    - ``acc7`` / ``acc5``: mean(round(clip(p, ±3)) == round(clip(t, ±3))), and with ±2; ``round`` is
      ``np.round`` (half to even);
    - ``acc2_has0`` / ``f1_has0``: accuracy / weighted F1 of (p ≥ 0) against (t ≥ 0), all samples;
    - ``acc2_non0`` / ``f1_non0``: samples with t == 0 dropped, then (p > 0) against (t > 0)
      (0.0 if no target is non-zero).

    Args:
        pred, true: N predictions and targets, any shape that flattens to (N,); NumPy, list or torch.

    Returns:
        dict of plain floats in ``METRIC_KEYS`` order; raw fractions (not ×100).
    """
    p, t = _pair(pred, true)
    has0_t, has0_p = t >= 0, p >= 0
    non0 = t != 0
    if np.any(non0):
        non0_t, non0_p = t[non0] > 0, p[non0] > 0
        acc2_non0, f1_non0 = _acc(non0_p, non0_t), _weighted_f1(non0_t, non0_p)
    else:
        acc2_non0 = f1_non0 = 0.0
    return {
        "mae": _mae(p, t),
        "corr": _pearson(p, t),
        "acc7": _acc(_rounded_class(p, 3.0), _rounded_class(t, 3.0)),
        "acc5": _acc(_rounded_class(p, 2.0), _rounded_class(t, 2.0)),
        "acc2_has0": _acc(has0_p, has0_t),
        "f1_has0": _weighted_f1(has0_t, has0_p),
        "acc2_non0": acc2_non0,
        "f1_non0": f1_non0,
    }


def _sims_class(x: np.ndarray, n_classes: int) -> np.ndarray:
    # Count of edges strictly below x: x ≤ edge[0] -> 0, edge[0] < x ≤ edge[1] -> 1, ...
    # Edges take x's dtype, as MMSA's comparisons of float32 arrays with Python floats do.
    edges = np.asarray(_SIMS_EDGES[n_classes], dtype=x.dtype)
    return np.searchsorted(edges, x, side="left")


def sims_metrics(pred: Any, true: Any) -> dict[str, float]:
    """CH-SIMS metrics (MMSA ``__eval_sims_regression``), keys ``SIMS_METRIC_KEYS``.

    Both sides are clipped to [−1, 1] first; ``mae`` and ``corr`` use the clipped values. Classes:
    ``acc2`` {[−1, 0], (0, 1]}, ``acc3`` {[−1, −0.1], (−0.1, 0.1], (0.1, 1]},
    ``acc5`` {[−1, −0.7], (−0.7, −0.1], (−0.1, 0.1], (0.1, 0.7], (0.7, 1]}; ``f1`` is the weighted
    F1 on the acc2 classes. ``corr`` is 0.0 when either clipped side is constant.

    Args:
        pred, true: N predictions and targets, any shape that flattens to (N,); NumPy, list or torch.

    Returns:
        dict of plain floats in ``SIMS_METRIC_KEYS`` order; raw fractions (not ×100).
    """
    p, t = _pair(pred, true)
    p, t = np.clip(p, -1.0, 1.0), np.clip(t, -1.0, 1.0)
    p2, t2 = _sims_class(p, 2), _sims_class(t, 2)
    return {
        "mae": _mae(p, t),
        "corr": _pearson(p, t),
        "acc2": _acc(p2, t2),
        "acc3": _acc(_sims_class(p, 3), _sims_class(t, 3)),
        "acc5": _acc(_sims_class(p, 5), _sims_class(t, 5)),
        "f1": _weighted_f1(t2, p2),
    }
