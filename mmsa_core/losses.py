"""Shared loss terms: pure functions of tensors that return a scalar.

Contents (docs/ARCHITECTURE.md; the definitions: docs/METHODS.md, HSCL §2, §4, §5, §7 quirk 1):

- ``supcr_loss``         supervised contrastive regression (SupCR), O((V·N)²) memory — the one to train with;
- ``supcr_loss_direct``  the literal (V·N)³ definition, kept public as the reference for tests and
                         ``benchmarks/bench_supcr.py`` (do not train with it: 512 MiB per tensor at N=256);
- ``infonce_loss``       multi-view InfoNCE / SimCLR (NT-Xent), the "without label information" ablation;
- ``similarity_loss``    mean L2 distance between paired vectors (``Sim`` of §2);
- ``l1_loss``            the task loss, mean |y − ŷ| (§4);
- ``supcon_loss``        supervised contrastive loss over classes (Khosla et al. 2020, L_out), with an
                         optional contrast mask (which vectors each anchor is contrasted with) —
                         HyCon's intra-/inter-modal terms and MM-CKD's multi-view contrast;
- ``class_labels``       the class rules methods use to turn scores into classes (sign2, sign3, round7).

Every function is device- and dtype-agnostic (float32 / float64; float16 / bfloat16 features are
promoted to float32) and differentiable. Tests: ``pytest tests/core/test_losses.py``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

__all__ = ["SUPCR_VARIANTS", "CLASS_RULES", "supcr_loss", "supcr_loss_direct", "infonce_loss", "similarity_loss",
           "l1_loss", "supcon_loss", "class_labels"]

SupCRVariant = Literal["intended", "hscl_code"]
SUPCR_VARIANTS: tuple[str, ...] = ("intended", "hscl_code")
CLASS_RULES: tuple[str, ...] = ("sign2", "sign3", "round7")


# ----------------------------------------------------------------------------------------------
# helpers


def _check_tau(tau: float) -> None:
    if not tau > 0:
        raise ValueError(f"temperature tau must be > 0, got {tau!r}")


def _check_variant(variant: str) -> None:
    if variant not in SUPCR_VARIANTS:
        raise ValueError(f"unknown SupCR variant {variant!r}; expected one of {SUPCR_VARIANTS}")


def _anchors(features: torch.Tensor, what: str) -> torch.Tensor:
    """(N, V, D) -> L2-normalised, view-major stack (V·N, D): row v·N + i is view v of sample i."""
    if features.dim() != 3:
        raise ValueError(f"{what}: features must be (N, V, D), got shape {tuple(features.shape)}")
    if features.dtype in (torch.float16, torch.bfloat16):
        features = features.float()  # logcumsumexp / exp sums are not safe in half precision
    z = F.normalize(features, p=2, dim=-1)
    return torch.cat(torch.unbind(z, dim=1), dim=0)  # (V·N, D)


def _logits(z: torch.Tensor, tau: float) -> torch.Tensor:
    """(M, D) unit vectors -> (M, M) s(i, j) = z_i·z_j / τ, in z's dtype even under autocast
    (a float16 matmul would cost ~0.05 absolute at |s| ≈ 100, i.e. τ = 0.01)."""
    with torch.autocast(device_type=z.device.type, enabled=False):
        return z @ z.T / tau


def _supcr_inputs(features: torch.Tensor, labels: torch.Tensor, tau: float,
                  variant: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Shared by both SupCR implementations so that they see bit-identical logits and distances."""
    _check_variant(variant)
    _check_tau(tau)
    z = _anchors(features, "supcr_loss")
    n, v = features.shape[:2]
    if labels.numel() != n:
        raise ValueError(f"supcr_loss: {labels.numel()} labels for {n} samples (features {tuple(features.shape)})")
    if n * v < 2:
        raise ValueError(f"supcr_loss needs at least two vectors (N·V ≥ 2), got N={n}, V={v}")
    # Labels are cast to the features' dtype: distances |y_a − y_k| then round the same way in every
    # implementation, which matters for ties (K includes k with equal distance).
    y = labels.reshape(-1).to(device=z.device, dtype=z.dtype).repeat(v)  # (V·N,) label of each anchor
    return _logits(z, tau), y  # (V·N, V·N) s(i, j), (V·N,)


# ----------------------------------------------------------------------------------------------
# SupCR


def supcr_loss(features: torch.Tensor, labels: torch.Tensor, tau: float, *,
               variant: SupCRVariant = "intended") -> torch.Tensor:
    r"""Supervised contrastive regression loss, SupCR (Zha et al., arXiv:2210.01189) as HSCL uses it (docs/METHODS.md, HSCL §5).

    With z_1..z_M the M = V·N L2-normalised views (stacked view-major), y_i the label of z_i's
    sample, s(i, j) = z_i·z_j / τ and d_a(k) = |y_a − y_k|:

        K(a, p) = { k ≠ a : d_a(k) ≥ d_a(p) }          (k = p and ties included)
        ℓ(a, p) = s(a, p) − log Σ_{k∈K(a,p)} exp s(a, k)          variant="intended" (paper)
        ℓ(a, p) = s(a, p) − log Σ_{k∈K(a,p)} exp s(p, k)          variant="hscl_code" (quirk 1)
        L       = − 1/M Σ_a 1/(M−1) Σ_{p≠a} ℓ(a, p)

    Every other vector p ≠ a is a positive in turn (the same sample's other views included).
    ``"hscl_code"`` reproduces the authors' implementation, whose denominator sums row p of the
    logits instead of row a (HSCL §7 quirk 1); K is still built from the anchor's distances.

    Method, O(M²) memory and O(M² log M) time: sort the M vectors once by label. For anchor a, the
    distance d_a(k) falls along the sorted order below y_a and rises above it (also after floating
    point rounding: fl(y_a − x) is monotone in x), so K(a, p) is the union of a sorted prefix
    [0, lo) and a sorted suffix [hi, M) — or, when d_a(p) = 0, every position but a's own. The two
    run ends come from ``searchsorted`` on each anchor's distance row, and the log-sums from
    per-row prefix / suffix ``logcumsumexp`` of the label-sorted logits (stable: no exp outside
    log-space), joined with ``logaddexp``; the logit row summed is a's ("intended") or p's
    ("hscl_code"). Values and gradients agree with ``supcr_loss_direct`` and with a pure-Python
    triple loop to float64 rounding (tests/core/test_losses.py).

    Args:
        features: (N, V, D) projected features; not yet normalised.
        labels: (N,) or (N, 1) regression labels (finite).
        tau: temperature τ > 0.
        variant: ``"intended"`` (default) or ``"hscl_code"``.

    Returns:
        Scalar tensor (0-d) in the features' dtype (float32 for half-precision input).

    Raises:
        ValueError: bad shapes, N·V < 2, τ ≤ 0 or an unknown variant.
    """
    sim, y = _supcr_inputs(features, labels, tau, variant)
    m = y.shape[0]
    dev = y.device
    idx = torch.arange(m, device=dev)

    perm = torch.argsort(y, stable=True)  # (M,) label-ascending order
    ys = y[perm]  # (M,) sorted labels
    pos = torch.empty_like(perm)
    pos[perm] = idx  # pos[k] = sorted position of vector k

    dist = (y[:, None] - y[None, :]).abs()  # (M, M) d_a(k), rows = anchors
    dist_sorted = dist.index_select(1, perm)  # (M, M) d_a at sorted position j (bit-identical values)
    n_below = torch.searchsorted(ys, y, side="left")  # (M,) #labels < y_a
    n_upto = torch.searchsorted(ys, y, side="right")  # (M,) #labels ≤ y_a
    inf = torch.tensor(float("inf"), dtype=y.dtype, device=dev)
    # Keys non-decreasing along j, so searchsorted finds where d_a(k) ≥ d_a(p) starts / stops.
    low_key = torch.where(idx[None, :] < n_below[:, None], -dist_sorted, inf).contiguous()  # (M, M)
    up_key = torch.where(idx[None, :] >= n_upto[:, None], dist_sorted, -inf).contiguous()  # (M, M)
    lo_end = torch.searchsorted(low_key, (-dist).contiguous(), side="right")  # (M, M): K ⊇ sorted [0, lo_end)
    hi_start = torch.searchsorted(up_key, dist.contiguous(), side="left")  # (M, M): K ⊇ sorted [hi_start, M)
    # d_a(p) = 0: every k ≠ a qualifies -> sorted [0, pos_a) ∪ [pos_a + 1, M).
    zero = dist == 0
    pos_a = pos[:, None].expand(m, m)
    lo_end = torch.where(zero, pos_a, lo_end)
    hi_start = torch.where(zero, pos_a + 1, hi_start)

    rows = sim.index_select(1, perm)  # (M, M) each row's logits in label order
    neg_inf = torch.full((m, 1), float("-inf"), dtype=sim.dtype, device=dev)
    log_prefix = torch.cat([neg_inf, torch.logcumsumexp(rows, dim=1)], dim=1)  # (M, M+1): LSE rows[i, :j]
    log_suffix = torch.cat([torch.logcumsumexp(rows.flip(1), dim=1).flip(1), neg_inf], dim=1)  # LSE rows[i, j:]
    if variant == "intended":  # row a: entry [a, p] reads log_prefix[a, lo_end[a, p]]
        low = log_prefix.gather(1, lo_end)
        high = log_suffix.gather(1, hi_start)
    else:  # row p: entry [a, p] reads log_prefix[p, lo_end[a, p]]
        low = log_prefix.gather(1, lo_end.T).T
        high = log_suffix.gather(1, hi_start.T).T
    log_den = torch.logaddexp(low, high)  # (M, M); p ∈ K(a, p), so never both −inf
    log_prob = sim - log_den  # (M, M) ℓ(a, p)
    off_diag = idx[:, None] != idx[None, :]
    return -log_prob[off_diag].mean()  # every anchor has M − 1 positives: = mean_a mean_p


def supcr_loss_direct(features: torch.Tensor, labels: torch.Tensor, tau: float, *,
                      variant: SupCRVariant = "intended") -> torch.Tensor:
    """Literal (V·N)³ SupCR, the reference for tests and benchmarks; same maths as ``supcr_loss``.

    Builds K(a, p, k) = [k ≠ a and d_a(k) ≥ d_a(p)] as an (M, M, M) mask (M = V·N) and a
    masked ``logsumexp`` over k of s(a, k) ("intended") or s(p, k) ("hscl_code"). Memory is
    several M³ tensors (≈ 0.5 GiB each at N = 256, V = 2, float32): use ``supcr_loss`` for training.
    Shapes, arguments and errors as in ``supcr_loss``.
    """
    sim, y = _supcr_inputs(features, labels, tau, variant)
    m = y.shape[0]
    eye = torch.eye(m, dtype=torch.bool, device=y.device)
    dist = (y[:, None] - y[None, :]).abs()  # (M, M) d_a(k)
    in_k = (dist[:, None, :] >= dist[:, :, None]) & ~eye[:, None, :]  # (M, M, M) [a, p, k]
    if variant == "intended":
        terms = sim[:, None, :].expand(m, m, m)  # [a, p, k] = s(a, k)
    else:
        terms = sim[None, :, :].expand(m, m, m)  # [a, p, k] = s(p, k)
    log_den = torch.logsumexp(terms.masked_fill(~in_k, float("-inf")), dim=2)  # (M, M)
    log_prob = sim - log_den
    return -log_prob[~eye].mean()


# ----------------------------------------------------------------------------------------------
# other terms


def infonce_loss(features: torch.Tensor, tau: float) -> torch.Tensor:
    r"""Multi-view InfoNCE / SimCLR NT-Xent (Chen et al. 2020): HSCL's "without label information" ablation (HSCL §5, §8).

    Over the M = V·N L2-normalised views with s(i, j) = z_i·z_j / τ, the positives P(a) of anchor a
    are the V − 1 other views of a's sample; the denominator runs over all M − 1 other vectors:

        L = − 1/M Σ_a 1/(V−1) Σ_{p∈P(a)} [ s(a, p) − log Σ_{k≠a} exp s(a, k) ]

    Args:
        features: (N, V, D), V ≥ 2.
        tau: temperature τ > 0.

    Returns:
        Scalar tensor.

    Raises:
        ValueError: V < 2 (no positives), bad shape or τ ≤ 0.
    """
    _check_tau(tau)
    z = _anchors(features, "infonce_loss")
    n, v = features.shape[:2]
    if v < 2:
        raise ValueError(f"infonce_loss needs V ≥ 2 views per sample (positives), got V={v}")
    m = n * v
    idx = torch.arange(m, device=z.device)
    sim = _logits(z, tau)  # (M, M)
    self_mask = idx[:, None] == idx[None, :]
    log_prob = torch.log_softmax(sim.masked_fill(self_mask, float("-inf")), dim=1)  # (M, M), k ≠ a
    sample = idx % n  # view-major stack: row v·N + i belongs to sample i
    positives = (sample[:, None] == sample[None, :]) & ~self_mask  # (M, M), V − 1 per row
    return -log_prob[positives].mean()


def similarity_loss(x: torch.Tensor, z: torch.Tensor, *, squared: bool = False) -> torch.Tensor:
    """Sim(x, z) of HSCL's unimodal level (docs/METHODS.md, HSCL §2): mean over the batch of ‖x_i − z_i‖₂ (``squared=True``: ‖x_i − z_i‖₂²).

    The paper writes the squared norm, the authors' code uses the plain norm (the default here).

    Args:
        x, z: (N, D) paired vectors.

    Returns:
        Scalar tensor. The plain norm's gradient at x_i = z_i is taken as 0 (subgradient).
    """
    if x.shape != z.shape or x.dim() != 2:
        raise ValueError(f"similarity_loss: x and z must both be (N, D), got {tuple(x.shape)} and {tuple(z.shape)}")
    diff = x - z  # (N, D)
    if squared:
        return diff.pow(2).sum(dim=1).mean()
    return torch.linalg.vector_norm(diff, ord=2, dim=1).mean()


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Task loss L_task of HSCL (docs/METHODS.md, HSCL §4): mean |y_i − ŷ_i|.

    Args:
        pred: (N,) or (N, 1) predictions.
        target: (N,) or (N, 1) labels (cast to ``pred``'s dtype and device).

    Returns:
        Scalar tensor.
    """
    pred = pred.reshape(-1)
    target = target.reshape(-1).to(device=pred.device, dtype=pred.dtype)
    if pred.numel() != target.numel():
        raise ValueError(f"l1_loss: {pred.numel()} predictions for {target.numel()} targets")
    return (pred - target).abs().mean()


def class_labels(scores: torch.Tensor, rule: str = "sign2") -> torch.Tensor:
    """Classes of sentiment scores (docs/METHODS.md, notation): ``sign2`` = [y ≥ 0] (2 classes),
    ``sign3`` = negative / zero / positive (0, 1, 2), ``round7`` = round(clip(y, −3, 3)) + 3 (0..6).

    Returns an int64 tensor of the scores' shape.
    """
    y = scores.detach()
    if rule == "sign2":
        return (y >= 0).long()
    if rule == "sign3":
        return (torch.sign(y) + 1).long()
    if rule == "round7":
        return torch.round(y.clamp(-3.0, 3.0)).long() + 3
    raise ValueError(f"unknown class rule {rule!r}; expected one of {list(CLASS_RULES)}")


def supcon_loss(z: torch.Tensor, classes: torch.Tensor, tau: float, *,
                contrast: torch.Tensor | None = None, normalize: bool = True) -> torch.Tensor:
    r"""Supervised contrastive loss (Khosla et al. 2020, :math:`L^{sup}_{out}`) over M vectors.

    For anchor a, the contrast set C(a) (default: every k ≠ a; ``contrast[a, k]`` restricts it) holds
    the vectors a is compared with; its positives are P(a) = {p ∈ C(a) : c_p = c_a}:

        L = − 1/|A| Σ_{a∈A} 1/|P(a)| Σ_{p∈P(a)} [ s(a, p) − log Σ_{k∈C(a)} exp s(a, k) ],

    s(i, j) = z_i·z_j / τ on L2-normalised vectors, A = the anchors with at least one positive.
    With no anchor having a positive the loss is 0 (and still differentiable).

    Args:
        z: (M, D) vectors (normalised here unless ``normalize=False``).
        classes: (M,) integer classes.
        tau: temperature τ > 0.
        contrast: optional (M, M) bool; the diagonal is always excluded.

    Returns:
        Scalar tensor.
    """
    _check_tau(tau)
    if z.dim() != 2:
        raise ValueError(f"supcon_loss: z must be (M, D), got shape {tuple(z.shape)}")
    m = z.shape[0]
    if classes.numel() != m:
        raise ValueError(f"supcon_loss: {classes.numel()} classes for {m} vectors")
    if z.dtype in (torch.float16, torch.bfloat16):
        z = z.float()
    if normalize:
        z = F.normalize(z, p=2, dim=-1)
    eye = torch.eye(m, dtype=torch.bool, device=z.device)
    allowed = ~eye if contrast is None else (contrast.to(device=z.device, dtype=torch.bool) & ~eye)
    c = classes.reshape(-1).to(z.device)
    positives = allowed & (c[:, None] == c[None, :])  # (M, M)
    sim = _logits(z, tau).masked_fill(~allowed, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)  # −inf outside C(a)
    n_pos = positives.sum(1)
    has = n_pos > 0
    if not bool(has.any()):
        return z.sum() * 0.0
    per_anchor = torch.where(positives, log_prob, torch.zeros_like(log_prob)).sum(1)
    return -(per_anchor[has] / n_pos[has]).mean()
