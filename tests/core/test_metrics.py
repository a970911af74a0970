"""Tests for mmsa_core/metrics.py: hand-computed MMSA metrics on small vectors, plus a loop reference.

The vectors are chosen so that round-half-to-even, the ±3 / ±2 clips, t == 0 and p == 0 all matter.
Run: ``pytest tests/core/test_metrics.py``.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mmsa_core.metrics import (HIGHER_IS_BETTER, METRIC_KEYS, SIMS_METRIC_KEYS, regression_metrics,
                               sims_metrics)

# t: half-way labels (0.5 -> 0, 1.5 -> 2, 2.5 -> 2, −0.5 -> −0, −2.5 -> −2), beyond ±3, and t = 0.
T = [0.5, 1.5, 2.5, -0.5, -2.5, 3.4, -3.6, 0.0]
P = [0.0, 2.0, 2.0, 0.4, -3.0, 2.6, -5.0, 0.0]


def test_regression_metrics_hand_case() -> None:
    got = regression_metrics(P, T)
    assert tuple(got) == METRIC_KEYS
    assert all(type(v) is float for v in got.values())
    assert got["mae"] == pytest.approx(5.1 / 8)  # 0.5+0.5+0.5+0.9+0.5+0.8+1.4+0
    assert got["corr"] == pytest.approx(np.corrcoef(P, T)[0, 1])
    # acc7: rounded t = 0,2,2,−0,−2,3,−3,0 ; rounded p = 0,2,2,0,−3,3,−3,0 -> only −2 vs −3 differs.
    # (Half away from zero would round t = 0.5, 2.5, −0.5 to 1, 3, −1 and give 4/8.)
    assert got["acc7"] == pytest.approx(7 / 8)
    # acc5: clip to ±2 first: t = 0,2,2,−0,−2,2,−2,0 and p = 0,2,2,0,−2,2,−2,0.
    assert got["acc5"] == pytest.approx(1.0)
    # has0: t ≥ 0 = TTTFFTFT (t = 0 counts positive), p ≥ 0 = TTTTFTFT (p = 0 too).
    assert got["acc2_has0"] == pytest.approx(7 / 8)
    # weighted F1: True (support 5) TP 5 FP 1 FN 0 -> 10/11; False (support 3) TP 2 FN 1 -> 4/5.
    assert got["f1_has0"] == pytest.approx((5 * 10 / 11 + 3 * 4 / 5) / 8)
    # non0: drop t = 0 (last); t > 0 = TTTFFTF, p > 0 = FTTTFTF (p = 0.0 is not > 0).
    assert got["acc2_non0"] == pytest.approx(5 / 7)
    # True (support 4) TP 3 FP 1 FN 1 -> 3/4; False (support 3) TP 2 FP 1 FN 1 -> 2/3.
    assert got["f1_non0"] == pytest.approx((4 * 3 / 4 + 3 * 2 / 3) / 7)


def test_regression_metrics_accepts_torch_and_shapes() -> None:
    torch = pytest.importorskip("torch")
    ref = regression_metrics(P, T)
    pred = torch.tensor(P, requires_grad=True).reshape(-1, 1)  # (N, 1) float32 with grad
    got = regression_metrics(pred, torch.tensor(T, dtype=torch.float64))
    for key in METRIC_KEYS:
        assert got[key] == pytest.approx(ref[key], abs=1e-6)
    assert regression_metrics(np.asarray(P, dtype=np.float32), np.asarray(T, dtype=np.float32))["acc7"] == ref["acc7"]


def test_regression_metrics_degenerate_cases() -> None:
    # Constant prediction: Pearson is undefined (MMSA gives nan) -> 0.0.
    assert regression_metrics([0.3, 0.3, 0.3], [1.0, -1.0, 2.0])["corr"] == 0.0
    assert regression_metrics([0.3], [1.0])["corr"] == 0.0
    # Every target 0: the non0 subset is empty (MMSA crashes) -> 0.0; has0 still defined.
    got = regression_metrics([0.5, -0.5], [0.0, 0.0])
    assert got["acc2_non0"] == 0.0 and got["f1_non0"] == 0.0
    assert got["acc2_has0"] == pytest.approx(0.5)
    # One class only, all correct -> 1.0, no warning needed.
    assert regression_metrics([1.0, 2.0], [0.5, 3.0])["f1_non0"] == pytest.approx(1.0)
    # Perfect anti-correlation.
    assert regression_metrics([1.0, 2.0, 3.0], [3.0, 2.0, 1.0])["corr"] == pytest.approx(-1.0)


def test_regression_metrics_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        regression_metrics([0.0, float("nan")], [0.0, 1.0])
    with pytest.raises(ValueError, match="empty"):
        regression_metrics([], [])
    with pytest.raises(ValueError, match="true has 3"):
        regression_metrics([0.0, 1.0], [0.0, 1.0, 2.0])


def _loop_weighted_f1(t: list[bool], p: list[bool]) -> float:
    score = 0.0
    for cls in set(t):
        tp = sum(1 for a, b in zip(t, p) if a == cls and b == cls)
        fp = sum(1 for a, b in zip(t, p) if a != cls and b == cls)
        fn = sum(1 for a, b in zip(t, p) if a == cls and b != cls)
        score += t.count(cls) * (2 * tp / (2 * tp + fp + fn))
    return score / len(t)


def _loop_regression(p: list[float], t: list[float]) -> dict[str, float]:
    """Independent definition: Python's round() is also half-to-even on floats."""
    n = len(t)
    clip = lambda x, b: max(-b, min(b, x))  # noqa: E731
    acc = lambda b: sum(round(clip(a, b)) == round(clip(c, b)) for a, c in zip(p, t)) / n  # noqa: E731
    keep = [i for i in range(n) if t[i] != 0]
    return {
        "mae": sum(abs(a - c) for a, c in zip(p, t)) / n,
        "acc7": acc(3.0), "acc5": acc(2.0),
        "acc2_has0": sum((a >= 0) == (c >= 0) for a, c in zip(p, t)) / n,
        "f1_has0": _loop_weighted_f1([c >= 0 for c in t], [a >= 0 for a in p]),
        "acc2_non0": sum((p[i] > 0) == (t[i] > 0) for i in keep) / len(keep),
        "f1_non0": _loop_weighted_f1([t[i] > 0 for i in keep], [p[i] > 0 for i in keep]),
    }


def test_regression_metrics_match_loop_definition_on_random_data() -> None:
    rng = random.Random(0)
    for _ in range(30):
        n = rng.randint(3, 40)
        t = [rng.choice([-3.0, -2.5, -1.5, -0.5, 0.0, 0.0, 0.5, 1.0, 1.5, 2.5, 3.0, 1.8]) for _ in range(n)]
        p = [rng.choice([round(rng.uniform(-4, 4) * 2) / 2, rng.uniform(-4, 4), 0.0]) for _ in range(n)]
        got, ref = regression_metrics(p, t), _loop_regression(p, t)
        for key, value in ref.items():
            assert got[key] == pytest.approx(value, abs=1e-12), key


def test_sims_metrics_hand_case() -> None:
    t = [-1.0, -0.7, -0.1, 0.0, 0.1, 0.7, 1.0, 1.5]
    p = [-0.95, -0.69, -0.1, 0.05, 0.11, 0.7, 2.0, 0.0]
    got = sims_metrics(p, t)
    assert tuple(got) == SIMS_METRIC_KEYS
    assert all(type(v) is float for v in got.values())
    # clipped: p[6] = 2.0 -> 1.0, t[7] = 1.5 -> 1.0; |diff| = .05 .01 0 .05 .01 0 0 1.0
    assert got["mae"] == pytest.approx(1.12 / 8)
    assert got["corr"] == pytest.approx(np.corrcoef(np.clip(p, -1, 1), np.clip(t, -1, 1))[0, 1])
    # acc2 {[−1,0], (0,1]}: t = 0000 1111, p = 0001 1110 (0.05 > 0; p = 0.0 is in [−1, 0])
    assert got["acc2"] == pytest.approx(6 / 8)
    # acc3: t = 0 0 0 1 1 2 2 2, p = 0 0 0 1 2 2 2 1  (edges belong to the lower class)
    assert got["acc3"] == pytest.approx(6 / 8)
    # acc5: t = 0 0 1 2 2 3 4 4, p = 0 1 1 2 3 3 4 2
    assert got["acc5"] == pytest.approx(5 / 8)
    # weighted F1 on acc2: class 1 TP 3 FP 1 FN 1 -> 3/4; class 0 TP 3 FP 1 FN 1 -> 3/4; supports 4 / 4.
    assert got["f1"] == pytest.approx(0.75)


def test_sims_metrics_float32_edges() -> None:
    # A float32 −0.7 sits on the edge in float32 (as in MMSA's float32 comparisons): lowest class.
    got = sims_metrics(np.array([-0.7, 0.1], dtype=np.float32), np.array([-0.8, 0.1], dtype=np.float32))
    assert got["acc5"] == pytest.approx(1.0)
    assert sims_metrics([0.2, 0.2], [0.1, -0.5])["corr"] == 0.0


def test_higher_is_better() -> None:
    assert set(HIGHER_IS_BETTER) == set(METRIC_KEYS) | set(SIMS_METRIC_KEYS)
    assert HIGHER_IS_BETTER["mae"] is False
    assert all(HIGHER_IS_BETTER[k] for k in HIGHER_IS_BETTER if k != "mae")


def test_metrics_module_does_not_import_torch() -> None:
    code = "import sys, mmsa_core.metrics; print('torch' in sys.modules)"
    repo_root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo_root)
    assert out.stdout.strip() == "False"
