"""CLFA's alignment loss: the symmetric (CLIP-style) InfoNCE between paired rows, in-batch negatives.

With x_i, r_i the L2-normalised rows of the two inputs and s(i, j) = x_i · r_j / τ:

    L = ½ [ −1/N Σ_i log softmax_j s(i, j)|_{j=i}  +  −1/N Σ_j log softmax_i s(i, j)|_{i=j} ]

the mean of the cross-entropy over the rows (x_i picks its own r_i among the batch's references) and
over the columns (r_j picks its own x_j). Sample i's positive is r_i; every r_j, j ≠ i, is a negative,
also when it equals r_i (two identical transcripts), as CLIP has it. A batch of one has no negative:
the loss is exactly 0 and has zero gradient. Tests: ``tests/methods/test_clfa.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["symmetric_infonce"]


def symmetric_infonce(x: torch.Tensor, r: torch.Tensor, tau: float) -> torch.Tensor:
    """Symmetric InfoNCE of paired rows ``x[i] <-> r[i]`` (both normalised here), temperature ``tau``.

    Args:
        x: (N, D) student vectors (CLFA: P_m(u_m)).
        r: (N, D) reference vectors of the same samples, same row order (CLFA: P_ref(e_ref)).
        tau: temperature τ > 0.

    Returns:
        Scalar tensor, in the inputs' dtype (float32 for half-precision inputs).

    Raises:
        ValueError: shapes differ, are not 2-d, N = 0, or τ ≤ 0.
    """
    if not tau > 0:
        raise ValueError(f"symmetric_infonce: temperature tau must be > 0, got {tau!r}")
    if x.dim() != 2 or x.shape != r.shape:
        raise ValueError(f"symmetric_infonce: x and r must both be (N, D), got {tuple(x.shape)} and "
                         f"{tuple(r.shape)}")
    if x.shape[0] == 0:
        raise ValueError("symmetric_infonce: empty batch")
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    r = r.to(x.dtype)
    with torch.autocast(device_type=x.device.type, enabled=False):
        logits = F.normalize(x, p=2, dim=-1) @ F.normalize(r, p=2, dim=-1).T / tau  # (N, N)
    target = torch.arange(x.shape[0], device=x.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
