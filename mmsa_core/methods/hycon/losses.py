"""HyCon's loss terms over per-modality projections z_m (N, D), as pure tensor functions.

Notation: K modalities present, N samples, the K·N vectors stacked modality-major (row m·N + i is
modality m of sample i), c_i the class of sample i (`mmsa_core.losses.class_labels`),
cos(·, ·) the cosine similarity, s(a, k) = cos(a, k) / τ.

- ``intra_loss``   Σ_m SupCon({z_m^i}_i): each modality on its own, positives c_i = c_j;
- ``inter_loss``   SupCon with anchors z_m^i contrasted only with z_n^j, n ≠ m (a contrast mask,
                   `cross_modal_mask`), positives c_i = c_j, j = i included — per modality pair
                   summed (``pairing="pairs"``, default) or all K·N vectors at once (``"joint"``);
- ``semi_loss``    Σ_{m<n} mean_i (μ − cos(z_m^i, z_n^i))²;
- ``refine_loss``  mean over the positive pairs (a, p) of (target(a, p) − cos(a, p))², target = t_intra
                   for two vectors of one modality and t_inter across modalities;
- ``weighted_supcon_loss``  SupCon with hard-negative weighting (see its docstring); β = 0 is SupCon.

Every function L2-normalises its inputs, works in float32/float64, and returns a differentiable 0-d
tensor (0 when no pair it needs exists, e.g. a batch of one sample for ``intra_loss``).
Tests: tests/methods/test_hycon.py (each against a loop-based definition).
"""

from __future__ import annotations

from itertools import combinations
from typing import Literal, Sequence

import torch
import torch.nn.functional as F

from mmsa_core.losses import supcon_loss

InterPairing = Literal["pairs", "joint"]
INTER_PAIRINGS: tuple[str, ...] = ("pairs", "joint")

__all__ = ["INTER_PAIRINGS", "cross_modal_mask", "weighted_supcon_loss", "intra_loss", "inter_loss",
           "semi_loss", "refine_loss"]


def _unit(z: torch.Tensor) -> torch.Tensor:
    if z.dtype in (torch.float16, torch.bfloat16):
        z = z.float()
    return F.normalize(z, p=2, dim=-1)


def _check(zs: Sequence[torch.Tensor], classes: torch.Tensor | None, what: str) -> int:
    if len(zs) == 0:
        raise ValueError(f"{what}: needs at least one modality's vectors")
    n = zs[0].shape[0]
    for z in zs:
        if z.dim() != 2 or z.shape[0] != n:
            raise ValueError(f"{what}: every modality's vectors must be (N, D) with the same N, got "
                             f"{[tuple(x.shape) for x in zs]}")
    if classes is not None and classes.numel() != n:
        raise ValueError(f"{what}: {classes.numel()} classes for {n} samples")
    return n


def cross_modal_mask(k: int, n: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(K·N, K·N) bool: True where the two stacked vectors belong to different modalities."""
    modality = torch.arange(k, device=device).repeat_interleave(n)  # (K·N,) modality of each row
    return modality[:, None] != modality[None, :]


def weighted_supcon_loss(z: torch.Tensor, classes: torch.Tensor, tau: float, *,
                         contrast: torch.Tensor | None = None, beta: float | None = None) -> torch.Tensor:
    r"""SupCon (Khosla et al. 2020, L_out) with optional hard-negative weighting of the denominator.

    For anchor a with contrast set C(a) (every k ≠ a, restricted by ``contrast``), positives
    P(a) = {p ∈ C(a) : c_p = c_a} and negatives N(a) = C(a) \ P(a):

        w_ak = |N(a)| · exp(β cos(a, k)) / Σ_{k'∈N(a)} exp(β cos(a, k'))   for k ∈ N(a)  (mean 1)
        w_ak = 1                                                          for k ∈ P(a)
        ℓ(a, p) = s(a, p) − log Σ_{k∈C(a)} w_ak exp s(a, k)
        L = − 1/|A| Σ_{a∈A} 1/|P(a)| Σ_{p∈P(a)} ℓ(a, p),    A = anchors with a positive.

    The weights are detached (they re-weight the estimator, no gradient flows through them): the
    importance weighting of Robinson et al. (ICLR 2021), normalised to mean 1 so that β = 0 is plain
    SupCon. *reconstruction* of HyCon's pair selection (its equations are not public).
    ``beta=None`` (or 0) calls `mmsa_core.losses.supcon_loss`.
    """
    if beta is None or beta == 0:
        return supcon_loss(z, classes, tau, contrast=contrast)
    if not tau > 0:
        raise ValueError(f"temperature tau must be > 0, got {tau!r}")
    if z.dim() != 2 or classes.numel() != z.shape[0]:
        raise ValueError(f"weighted_supcon_loss: z must be (M, D) with M classes, got {tuple(z.shape)} "
                         f"and {classes.numel()} classes")
    z = _unit(z)
    m = z.shape[0]
    eye = torch.eye(m, dtype=torch.bool, device=z.device)
    allowed = ~eye if contrast is None else (contrast.to(device=z.device, dtype=torch.bool) & ~eye)
    c = classes.reshape(-1).to(z.device)
    same = c[:, None] == c[None, :]
    positives = allowed & same
    negatives = allowed & ~same
    with torch.autocast(device_type=z.device.type, enabled=False):
        cos = z @ z.T  # (M, M)
    sim = cos / tau
    # log w_ak on negatives: log|N(a)| + β cos − logsumexp_{N(a)} β cos (detached)
    hard = (beta * cos.detach()).masked_fill(~negatives, float("-inf"))
    n_neg = negatives.sum(1, keepdim=True)
    lse = torch.logsumexp(hard, dim=1, keepdim=True)
    log_w = torch.where(negatives, torch.log(n_neg.clamp_min(1).to(z.dtype)) + hard - lse,
                        torch.zeros_like(sim))
    den = torch.logsumexp((sim + log_w).masked_fill(~allowed, float("-inf")), dim=1, keepdim=True)
    log_prob = sim - den
    n_pos = positives.sum(1)
    has = n_pos > 0
    if not bool(has.any()):
        return z.sum() * 0.0
    per_anchor = torch.where(positives, log_prob, torch.zeros_like(log_prob)).sum(1)
    return -(per_anchor[has] / n_pos[has]).mean()


def intra_loss(zs: Sequence[torch.Tensor], classes: torch.Tensor, tau: float, *,
               beta: float | None = None) -> torch.Tensor:
    """Σ_m SupCon over {z_m^i}_i (within modality m, across samples; positives c_i = c_j)."""
    _check(zs, classes, "intra_loss")
    return sum(weighted_supcon_loss(z, classes, tau, beta=beta) for z in zs)


def inter_loss(zs: Sequence[torch.Tensor], classes: torch.Tensor, tau: float, *,
               pairing: InterPairing = "pairs", beta: float | None = None) -> torch.Tensor:
    """SupCon across modalities: anchor z_m^i is compared only with z_n^j, n ≠ m; positives c_i = c_j
    (its own sample's other modalities, j = i, included).

    ``pairing="pairs"``: Σ_{m<n} SupCon over the 2N vectors {z_m, z_n} (both directions as anchors).
    ``pairing="joint"``: one SupCon over all K·N vectors, anchor z_m^i against every other modality.
    The two agree when K = 2.
    """
    n = _check(zs, classes, "inter_loss")
    if len(zs) < 2:
        raise ValueError("inter_loss needs at least two modalities")
    if pairing not in INTER_PAIRINGS:
        raise ValueError(f"inter_loss: pairing={pairing!r} must be one of {list(INTER_PAIRINGS)}")
    c = classes.reshape(-1)
    groups = list(combinations(zs, 2)) if pairing == "pairs" else [tuple(zs)]
    total = 0.0
    for group in groups:
        z = torch.cat(list(group), dim=0)  # modality-major (len(group)·N, D)
        mask = cross_modal_mask(len(group), n, z.device)
        total = total + weighted_supcon_loss(z, c.repeat(len(group)), tau, contrast=mask, beta=beta)
    return total


def semi_loss(zs: Sequence[torch.Tensor], margin: float) -> torch.Tensor:
    """Σ_{m<n} mean_i (μ − cos(z_m^i, z_n^i))²: the modalities of one sample pulled to cosine μ."""
    _check(zs, None, "semi_loss")
    if len(zs) < 2:
        raise ValueError("semi_loss needs at least two modalities")
    units = [_unit(z) for z in zs]
    return sum(((margin - (a * b).sum(-1)) ** 2).mean() for a, b in combinations(units, 2))


def refine_loss(zs: Sequence[torch.Tensor], classes: torch.Tensor, *, target_intra: float = 1.0,
                target_inter: float = 1.0) -> torch.Tensor:
    """Mean over the positive pairs (a, p), a ≠ p, c_a = c_p, of all K·N vectors of
    (target − cos(a, p))²; target = `target_intra` when a and p are one modality's vectors (of two
    samples), `target_inter` across modalities (the same sample's included). 0 with no positive pair."""
    n = _check(zs, classes, "refine_loss")
    z = torch.cat([_unit(x) for x in zs], dim=0)  # (K·N, D)
    k = len(zs)
    c = classes.reshape(-1).to(z.device).repeat(k)
    with torch.autocast(device_type=z.device.type, enabled=False):
        cos = z @ z.T
    eye = torch.eye(k * n, dtype=torch.bool, device=z.device)
    positives = (c[:, None] == c[None, :]) & ~eye
    if not bool(positives.any()):
        return z.sum() * 0.0
    cross = cross_modal_mask(k, n, z.device)
    target = torch.where(cross, torch.full_like(cos, float(target_inter)),
                         torch.full_like(cos, float(target_intra)))
    return ((target - cos) ** 2)[positives].mean()
