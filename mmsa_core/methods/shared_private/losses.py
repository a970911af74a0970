"""The covariance-alignment loss (Deep CORAL, Sun & Saenko 2016), for modality pairs.

    C(S) = (S − 1·mean(S))ᵀ (S − 1·mean(S)) / max(B − 1, 1)        S: (B, d)
    coral(S_m, S_n) = ‖C(S_m) − C(S_n)‖_F² / (4 d²)

A batch of one sample has covariance 0 (its centred features are zero), so the loss is 0 there.
"""

from __future__ import annotations

import torch

__all__ = ["coral_loss", "covariance"]


def covariance(x: torch.Tensor) -> torch.Tensor:
    """(B, d) -> (d, d) unbiased covariance of the rows (zeros for B = 1); fp32 for half inputs."""
    if x.dim() != 2:
        raise ValueError(f"covariance: features must be (B, d), got shape {tuple(x.shape)}")
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    centred = x - x.mean(dim=0, keepdim=True)
    return centred.T @ centred / max(x.shape[0] - 1, 1)


def coral_loss(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """‖C(x) − C(z)‖_F² / (4 d²) for two (B, d) batches of the same width."""
    if x.shape[1] != z.shape[1] or x.shape[0] != z.shape[0]:
        raise ValueError(f"coral_loss: shapes {tuple(x.shape)} and {tuple(z.shape)} differ")
    d = x.shape[1]
    return ((covariance(x) - covariance(z)) ** 2).sum() / (4 * d * d)
