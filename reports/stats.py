"""Pure statistics for report tables: mean ± sample std over seeds, paired tests, Holm.

No MLflow, no pandas: plain numbers in, plain numbers out, so every function here is checked
against a hand computation in `tests/reports/test_stats.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

# name used on the CLI -> how a report names the test (said in every caption that uses it)
TESTS: Mapping[str, str] = {
    "ttest": "paired t-test (scipy.stats.ttest_rel, two-sided)",
    "wilcoxon": "Wilcoxon signed-rank test (scipy.stats.wilcoxon, two-sided)",
}
CORRECTION = "Holm–Bonferroni"
# Fewest matched seeds a paired test is run on. With 2 pairs a t-test has one degree of freedom and
# two near-equal differences give p < 0.05 by accident, and an exact Wilcoxon test cannot go below
# p = 0.5; a report prints "n/a" (and no significance mark) instead.
MIN_PAIRS = 3


@dataclass(frozen=True)
class Summary:
    """Mean and sample standard deviation (ddof=1) of the finite values; std is NaN for n < 2."""

    mean: float
    std: float
    n: int


@dataclass(frozen=True)
class PairedResult:
    """A paired test over matched seeds. `p` is None when the test is undefined (`reason` says why)."""

    n_pairs: int
    p: float | None
    statistic: float | None
    reason: str = ""


def summarize(values: Sequence[float]) -> Summary:
    """Mean ± sample std (ddof=1) over seeds, ignoring NaN (a metric a run did not log)."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    arr = arr[np.isfinite(arr)]
    n = int(arr.size)
    if n == 0:
        return Summary(math.nan, math.nan, 0)
    std = float(np.std(arr, ddof=1)) if n >= 2 else math.nan
    return Summary(float(np.mean(arr)), std, n)


def matched_pairs(variant: Mapping[int, float], reference: Mapping[int, float]
                  ) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Seeds present (with a finite value) in both, sorted, and the two aligned value arrays."""
    seeds = sorted(s for s in set(variant) & set(reference)
                   if _finite(variant[s]) and _finite(reference[s]))
    a = np.asarray([variant[s] for s in seeds], dtype=float)
    b = np.asarray([reference[s] for s in seeds], dtype=float)
    return seeds, a, b


def paired_test(variant: Mapping[int, float], reference: Mapping[int, float], *,
                test: str = "ttest", min_pairs: int = MIN_PAIRS) -> PairedResult:
    """Two-sided paired test of `variant` against `reference`, runs paired by seed.

    Only seeds present in both count. With fewer than `min_pairs` pairs, or when the paired
    differences leave the test undefined (all zero; zero variance for the t-test), p is None — a
    report prints "n/a", never a made-up number.
    """
    if test not in TESTS:
        raise ValueError(f"unknown test {test!r}; choose one of {sorted(TESTS)}")
    seeds, a, b = matched_pairs(variant, reference)
    n = len(seeds)
    if n < max(2, min_pairs):
        return PairedResult(n, None, None, f"{n} matched seed(s); a paired test needs at least {max(2, min_pairs)}")
    diff = a - b
    if np.all(diff == 0):
        return PairedResult(n, None, None, "all paired differences are zero")
    from scipy import stats  # scipy is only needed when a test actually runs

    if test == "ttest":
        if np.ptp(diff) == 0:
            return PairedResult(n, None, None, "paired differences have zero variance")
        res = stats.ttest_rel(a, b)
    else:
        res = stats.wilcoxon(a, b)
    p = float(res.pvalue)
    if not math.isfinite(p):
        return PairedResult(n, None, None, f"{test} returned an undefined p-value")
    return PairedResult(n, p, float(res.statistic))


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm–Bonferroni adjusted p-values, in the input order.

    Missing p-values (None/NaN) are not part of the family and stay None. With the m defined
    p-values sorted ascending, p_(i) (i = 1..m) becomes max_{j<=i} min(1, (m - j + 1) p_(j)).
    Example: [0.01, 0.04, 0.03] -> [0.03, 0.06, 0.06].
    """
    defined = [i for i, p in enumerate(pvalues) if p is not None and _finite(p)]
    m = len(defined)
    order = sorted(defined, key=lambda i: pvalues[i])  # stable for ties
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))
        out[i] = running
    return out


def min_wilcoxon_p(n_pairs: int) -> float:
    """Smallest two-sided exact Wilcoxon p-value reachable with n pairs (no ties): 2 / 2**n."""
    return min(1.0, 2.0 / 2 ** n_pairs)


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(float(x))
