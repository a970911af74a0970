"""MM-CKD's multi-view supervised contrast (MVSC) over the teacher's and the students' views.

*reconstruction* (docs/METHODS.md, MM-CKD: a supervised contrastive loss over all (K+1)·N vectors
with class positives, or SupCR on the raw scores): both kinds reuse the project's shared losses.
"""

from __future__ import annotations

import torch

from mmsa_core.losses import class_labels, supcon_loss, supcr_loss

__all__ = ["mvsc_loss", "stack_views"]


def stack_views(views: list[torch.Tensor]) -> torch.Tensor:
    """[(N, D)] * V (teacher first, then the students) -> (N, V, D)."""
    if len(views) < 2:
        raise ValueError(f"mvsc needs at least two views (the teacher and one student), got {len(views)}")
    return torch.stack(views, dim=1)


def mvsc_loss(views: torch.Tensor, labels: torch.Tensor, *, kind: str = "supcon", tau: float = 0.1,
              class_rule: str = "sign2") -> torch.Tensor:
    r"""L_MVSC over the M = V·N vectors of ``views`` (N samples, V = K+1 views, not yet normalised).

    ``kind="supcon"``: `supcon_loss` (Khosla et al.'s L_out) over the view-major stack
    z_{v·N+i} = view v of sample i, classes c = ``class_labels(y, class_rule)`` repeated per view:

        L = − 1/|A| Σ_a 1/|P(a)| Σ_{p∈P(a)} [ s(a, p) − log Σ_{k≠a} exp s(a, k) ],

    P(a) = {p ≠ a : c_p = c_a} (the sample's own other views included), s = cosine / τ.
    ``kind="supcr"``: `supcr_loss` (the project's SupCR, "intended" variant) on the raw scores with
    V views per sample.

    Args:
        views: (N, V, D), V ≥ 2.
        labels: (N,) regression scores.
        kind: "supcon" or "supcr".
        tau: temperature τ > 0.
        class_rule: "sign2" | "sign3" | "round7" (supcon only).
    """
    if views.dim() != 3 or views.shape[1] < 2:
        raise ValueError(f"mvsc_loss: views must be (N, V >= 2, D), got shape {tuple(views.shape)}")
    labels = labels.reshape(-1)
    if kind == "supcon":
        v = views.shape[1]
        z = torch.cat(torch.unbind(views, dim=1), dim=0)  # (V·N, D), view-major
        classes = class_labels(labels, class_rule).repeat(v)  # (V·N,)
        return supcon_loss(z, classes, tau)
    if kind == "supcr":
        return supcr_loss(views, labels, tau)
    raise ValueError(f"mvsc_loss: kind={kind!r} must be 'supcon' or 'supcr'")
