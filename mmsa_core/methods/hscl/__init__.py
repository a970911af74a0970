"""HSCL — Hierarchical Supervised Contrastive Learning (Chen, Wang, Hao; MMM 2024).

Facts read from the paper and the authors' code are collected in docs/METHODS.md, HSCL (§1-§8).

    L = L_task + ω1 (L_ta + L_tv) + ω2 L_fusion,   L_m = SupCR([R̂_t, R̂_m]) + α Sim(R̂_t, R̂_m)

kept as separate terms ``supcr_ta, sim_ta, supcr_tv, sim_tv, supcr_fusion`` so that each can be
ablated alone. With one non-text stream the fusion level has a single view (R̂_mt) and SupCR runs
over it alone (N anchors); with text only there is no contrastive term.

`faithful=True` reproduces the six quirks of the authors' code (docs/METHODS.md, HSCL §7): (1) SupCR's denominator,
(2) random [CLS] vectors, (3) text self-attention without the padding mask, (4) the cross-attention
residual, (5) ReLU at the end of every projection, (6) τ hard-coded to 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from mmsa_core.methods.base import Method, MethodParams, Replacement
from mmsa_core.methods.space import LOSS_WEIGHT, Param

if TYPE_CHECKING:
    from mmsa_core.methods.base import RunConfig

TERMS = ("task", "supcr_ta", "supcr_tv", "sim_ta", "sim_tv", "supcr_fusion")
# The HSCL authors' optimisation per dataset (beyond the shared defaults, which are their MOSI values).
# L1, HyCon and MM-CKD adopt it: their papers give none for these encoders.
OPTIMISATION: dict[str, dict[str, float]] = {"mosi": {}, "mosei": dict(lr_text=1e-5, lr_other=1e-4, lr_step_epoch=5)}
CONTRASTIVE_TERMS = ("supcr_ta", "supcr_tv", "supcr_fusion")


@dataclass(frozen=True)
class Params(MethodParams):
    """HSCL's hyper-parameters; defaults = the authors' MOSI column (docs/METHODS.md, HSCL §4, §6)."""

    omega1: float = 0.01  # unimodal level weight
    omega2: float = 0.1  # fusion level weight
    alpha: float = 0.1  # similarity term inside each unimodal pair
    tau: float = 0.5  # SupCR temperature
    sim_norm: Literal["l2", "squared_l2"] = "l2"  # code uses plain L2; the paper writes the square
    label_info: Literal["supcr", "infonce"] = "supcr"  # "infonce" = "without label information"
    faithful: bool = False  # reproduce the six quirks of the authors' code (HSCL §7)

    def problems(self) -> list[str]:
        p = [f"{n}={getattr(self, n)} must be >= 0" for n in ("omega1", "omega2", "alpha") if getattr(self, n) < 0]
        if not self.tau > 0:
            p.append(f"tau={self.tau} must be > 0")
        return p


def possible_terms(cfg: "RunConfig") -> tuple[str, ...]:
    """Terms HSCL defines for the config's modalities, before switches are applied."""
    terms = ["task"]
    for m in ("a", "v"):
        if m in cfg.modalities:
            terms += [f"supcr_t{m}", f"sim_t{m}"]
    if len(cfg.modalities) > 1:
        terms.append("supcr_fusion")
    return tuple(terms)


def term_weights(cfg: "RunConfig") -> dict[str, float]:
    p: Params = cfg.method_params
    return {"task": 1.0, "supcr_ta": p.omega1, "supcr_tv": p.omega1, "sim_ta": p.omega1 * p.alpha,
            "sim_tv": p.omega1 * p.alpha, "supcr_fusion": p.omega2}


def _check(cfg: "RunConfig") -> list[str]:
    # "without label information" on one non-text stream would leave the fusion level with one view,
    # and InfoNCE needs two views per sample (positives)
    p: Params = cfg.method_params
    if (p.label_info == "infonce" and len(cfg.modalities) == 2 and "supcr_fusion" not in cfg.disabled_losses
            and p.omega2 > 0):
        return [f"hscl.label_info='infonce' needs two fused views, but modalities={cfg.modalities!r} give "
                "one: use modalities='tav' or disable supcr_fusion"]
    return []


METHOD = Method(
    name="hscl",
    description="Hierarchical Supervised Contrastive Learning (Chen et al., MMM 2024)",
    citation="Chen, Wang, Hao. Hierarchical Supervised Contrastive Learning for Multimodal "
             "Sentiment Analysis. MMM 2024, LNCS 14555, pp. 56-69.",
    published="none on MMSA's feature files in the paper's own setting that this project reproduces "
              "(see README, Benchmarks)",
    params=Params,
    terms=TERMS,
    runtime="mmsa_core.methods.hscl.runtime",
    possible_terms=possible_terms,
    term_weights=term_weights,
    check=_check,
    switches={"faithful": "reproduce the six quirks of the authors' code (README, HSCL)"},
    space=(
        Param("hscl.omega1", 1e-3, 1.0, True, "unimodal-level " + LOSS_WEIGHT),
        Param("hscl.omega2", 1e-3, 1.0, True, "fusion-level " + LOSS_WEIGHT),
        Param("hscl.alpha", 1e-3, 1.0, True, "similarity term inside each pair; " + LOSS_WEIGHT),
        Param("hscl.tau", 0.05, 1.0, True, "SupCR temperature: acts through ratios, so log scale"),
    ),
    presets={"mosi": dict(OPTIMISATION["mosi"]), "mosei": dict(OPTIMISATION["mosei"], omega2=0.05)},
    term_needs={"supcr_ta": "the acoustic stream (a)", "sim_ta": "the acoustic stream (a)",
                "supcr_tv": "the visual stream (v)", "sim_tv": "the visual stream (v)",
                "supcr_fusion": "at least one non-text stream (a or v) to fuse with text"},
    replacements=(
        Replacement("supcr", "infonce", {"label_info": "infonce"}, affects=CONTRASTIVE_TERMS,
                    why="without label information: SupCR -> the unsupervised multi-view InfoNCE "
                        "on the same views (docs/METHODS.md, HSCL §5)"),
    ),
)
