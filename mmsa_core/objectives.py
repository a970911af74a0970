"""Loss families: which named terms a method computes, and with which weights.

A method is the shared encoder core (`models/hscl.py`) plus a set of named, weighted loss terms:
``L = Σ_k w_k · L_k``. Each term can be switched off by name (ablations) and each weight is a
`RunConfig` field (sweeps). Adding a method = adding one `_terms_<method>` function and one entry in
`METHODS`; the trainer never changes.

HSCL (spec hscl.md §2–4):
    L = L_task + ω1 (L_ta + L_tv) + ω2 L_fusion,   L_m = SupCR([R̂_t, R̂_m]) + α Sim(R̂_t, R̂_m)
kept as separate terms ``supcr_ta, sim_ta, supcr_tv, sim_tv, supcr_fusion`` so that each can be
ablated alone. With one non-text stream the fusion level has a single view (R̂_mt) and SupCR runs
over it alone (N anchors); with text only there is no contrastive term.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Mapping

if TYPE_CHECKING:
    import torch

    from mmsa_core.config import RunConfig
    from mmsa_core.models.hscl import HSCLOutput

# method name -> human description. Pure data, so config validation needs no torch.
METHODS: Mapping[str, str] = {
    "hscl": "Hierarchical Supervised Contrastive Learning (Chen et al., MMM 2024)",
    "l1": "the shared encoders trained on the L1 task loss alone (no contrastive term)",
}


def possible_terms(cfg: "RunConfig") -> tuple[str, ...]:
    """Terms the method defines for the config's modalities, before switches are applied."""
    if cfg.method == "l1":
        return ("task",)
    terms = ["task"]
    for m in ("a", "v"):
        if m in cfg.modalities:
            terms += [f"supcr_t{m}", f"sim_t{m}"]
    if len(cfg.modalities) > 1:
        terms.append("supcr_fusion")
    return tuple(terms)


def loss_weights(cfg: "RunConfig") -> dict[str, float]:
    """Weight of every possible term (0 for a switched-off one)."""
    weights = {"task": 1.0, "supcr_ta": cfg.omega1, "supcr_tv": cfg.omega1,
               "sim_ta": cfg.omega1 * cfg.alpha, "sim_tv": cfg.omega1 * cfg.alpha,
               "supcr_fusion": cfg.omega2}
    return {t: (0.0 if t in cfg.disabled_losses else weights[t]) for t in possible_terms(cfg)}


def active_terms(cfg: "RunConfig") -> tuple[str, ...]:
    """Terms that are computed: defined for the modalities, not disabled, weight > 0."""
    return tuple(t for t, w in loss_weights(cfg).items() if w > 0 or t == "task")


def compute_terms(cfg: "RunConfig", out: "HSCLOutput", labels: "torch.Tensor") -> dict[str, "torch.Tensor"]:
    """Unweighted value of every active term (scalars), for logging and for the total."""
    return _FAMILIES[cfg.method](cfg, out, labels)


def total_loss(cfg: "RunConfig", terms: Mapping[str, "torch.Tensor"]) -> "torch.Tensor":
    weights = loss_weights(cfg)
    return sum(weights[name] * value for name, value in terms.items())


def _contrast(cfg: "RunConfig", views: "torch.Tensor", labels: "torch.Tensor") -> "torch.Tensor":
    """SupCR over the views, or multi-view InfoNCE when label information is ablated away."""
    from mmsa_core import losses

    tau = 0.5 if cfg.faithful else cfg.tau  # quirk 6: the authors hard-code τ = 0.5
    if cfg.label_info == "infonce":
        return losses.infonce_loss(views, tau)
    variant = "hscl_code" if cfg.faithful else "intended"  # quirk 1: the code's denominator
    return losses.supcr_loss(views, labels, tau, variant=variant)


def _terms_hscl(cfg: "RunConfig", out: "HSCLOutput", labels: "torch.Tensor") -> dict[str, "torch.Tensor"]:
    import torch

    from mmsa_core import losses

    active = set(active_terms(cfg))
    terms: dict[str, torch.Tensor] = {"task": losses.l1_loss(out.prediction, labels)}
    for m in ("a", "v"):
        if f"supcr_t{m}" in active:
            views = torch.stack([out.projections["t"], out.projections[m]], dim=1)  # (N, 2, P)
            terms[f"supcr_t{m}"] = _contrast(cfg, views, labels)
        if f"sim_t{m}" in active:
            terms[f"sim_t{m}"] = losses.similarity_loss(
                out.projections["t"], out.projections[m], squared=cfg.sim_norm == "squared_l2")
    if "supcr_fusion" in active:
        fused = [out.projections[k] for k in ("at", "vt") if k in out.projections]
        terms["supcr_fusion"] = _contrast(cfg, torch.stack(fused, dim=1), labels)  # (N, V, P)
    return terms


def _terms_l1(cfg: "RunConfig", out: "HSCLOutput", labels: "torch.Tensor") -> dict[str, "torch.Tensor"]:
    from mmsa_core import losses

    return {"task": losses.l1_loss(out.prediction, labels)}


_FAMILIES: dict[str, Callable[..., dict]] = {"hscl": _terms_hscl, "l1": _terms_l1}
assert set(_FAMILIES) == set(METHODS), "every method needs a loss family"
