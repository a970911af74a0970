"""Shared/private learning: Self-MM plus covariance alignment between modality pairs.

Lai, Hu, Wang, Liu. Shared and Private Information Learning in Multimodal Sentiment Analysis with
Deep Modal Alignment and Self-supervised Multi-Task Learning. arXiv 2305.08473 (2023). No public
code, equations or result table were found (docs/METHODS.md, Shared/private): the private part is Self-MM
(`mmsa_core.methods.selfmm`, imported and extended, not copied), the shared part is
*reconstruction* throughout.

    L = L_SelfMM + λ_cov · Σ_{(m,n) ∈ P} ‖C_m − C_n‖_F² / (4d²)

- *reconstruction* (Deep-CORAL reading of "deep modal alignment"): s_m = P_m(u_m), a Linear per
  modality from Self-MM's encoder output u_m (text [CLS]; the acoustic/visual subnet outputs) to a
  common width d (``cov_dim``); C_m = the unbiased covariance of the batch's s_m,
  C = (S − mean)ᵀ(S − mean)/(B − 1). A batch of one sample has covariance 0 (its centred features are
  zero; the B − 1 is taken as 1): the term is 0 for that batch, with zero gradient.
- *reconstruction*: the shared projections s_t, s_a, s_v are also fed to the fused head
  ([u_t; u_a; u_v; s_t; s_a; s_v], ``shared_into_fusion=True``), so the task keeps them informative;
  with ``shared_into_fusion=False`` they serve the alignment only, and P_m → 0 minimises it
  trivially (shrinking every covariance), which is why it is not the default.
- *reconstruction*: λ_cov = 0.1 and d = 32 (no published value); P = all three pairs.
- The terms are one per pair — ``cov_ta``, ``cov_tv``, ``cov_av`` (each weighted λ_cov) — so that an
  ablation switches one pair off by name (``disable: [cov_ta]``), while ``pairs`` (a comma list of
  ``ta``, ``tv``, ``av``) is the searchable set P: a pair outside P, or whose stream the
  configuration lacks, is not defined and not computed.
- Everything else (heads, ULGM, gradient accumulation over ``update_epochs`` batches, optimiser
  groups, presets with ``grad_clip=1e9``) is Self-MM's; λ_cov = 0 is Self-MM with the shared
  projections in its fused input.

Modalities: ``ta``, ``tv``, ``tav`` (Self-MM's); with two modalities only their one pair exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmsa_core.methods import selfmm
from mmsa_core.methods.base import Method
from mmsa_core.methods.space import Param

if TYPE_CHECKING:
    from mmsa_core.methods.base import RunConfig

PAIRS = ("ta", "tv", "av")
COV_TERMS = tuple(f"cov_{p}" for p in PAIRS)
TERMS = selfmm.TERMS + COV_TERMS
# every non-empty subset of the pairs, in a fixed order (the categorical choices of P)
PAIR_SETS = ("ta", "tv", "av", "ta,tv", "ta,av", "tv,av", "ta,tv,av")


def parse_pairs(pairs: str) -> tuple[str, ...]:
    """``"ta, tv"`` -> ``("ta", "tv")``; a ValueError naming the valid pairs otherwise."""
    items = [p.strip() for p in str(pairs).split(",") if p.strip()]
    bad = [p for p in items if p not in PAIRS]
    if bad or not items or len(set(items)) != len(items):
        why = (f"unknown pair(s) {bad}" if bad else "no pair" if not items else "a pair appears twice")
        raise ValueError(f"pairs={pairs!r}: {why}; give a comma list of distinct pairs from {list(PAIRS)}")
    return tuple(p for p in PAIRS if p in items)


@dataclass(frozen=True)
class Params(selfmm.Params):
    """Self-MM's hyper-parameters plus the covariance alignment's (all reconstruction)."""

    lambda_cov: float = 0.1  # weight of every cov_<pair> term (reconstruction: no published value)
    pairs: str = "ta,tv,av"  # P: which modality pairs share (comma list of ta, tv, av)
    cov_dim: int = 32  # d: the common width of the shared projections
    shared_into_fusion: bool = True  # the fused head also reads s_t, s_a, s_v

    def problems(self) -> list[str]:
        p = super().problems()
        if self.lambda_cov < 0:
            p.append(f"lambda_cov={self.lambda_cov} must be >= 0")
        if self.cov_dim < 1:
            p.append(f"cov_dim={self.cov_dim} must be >= 1")
        try:
            parse_pairs(self.pairs)
        except ValueError as exc:
            p.append(str(exc))
        return p


def possible_terms(cfg: "RunConfig") -> tuple[str, ...]:
    """Self-MM's terms, then one cov term per pair of P whose two modalities are configured."""
    pairs = parse_pairs(cfg.method_params.pairs)
    return selfmm.possible_terms(cfg) + tuple(
        f"cov_{p}" for p in pairs if all(m in cfg.modalities for m in p))


def term_weights(cfg: "RunConfig") -> dict[str, float]:
    return {**selfmm.term_weights(cfg), **{t: float(cfg.method_params.lambda_cov) for t in COV_TERMS}}


METHOD = Method(
    name="shared_private",
    description="shared/private learning: Self-MM + covariance alignment of modality pairs "
                "(Lai et al. 2023; reconstruction)",
    citation="Lai, Hu, Wang, Liu. Shared and Private Information Learning in Multimodal Sentiment "
             "Analysis with Deep Modal Alignment and Self-supervised Multi-Task Learning. "
             "arXiv 2305.08473, 2023.",
    published="none published: no public code, equations or result table were found for Lai et al. "
              "(docs/METHODS.md); its Self-MM base has published numbers (method 'selfmm')",
    params=Params,
    terms=TERMS,
    runtime="mmsa_core.methods.shared_private.runtime",
    possible_terms=possible_terms,
    term_weights=term_weights,
    space=(
        Param("shared_private.lambda_cov", 1e-3, 10.0, True,
              "covariance-alignment loss weight (reconstruction: no published value); spans decades"),
        Param("shared_private.pairs", kind="categorical", choices=PAIR_SETS, when={"modalities": ("tav",)},
              why="P, the modality pairs that share: every non-empty subset (only with all three "
                  "modalities; with two there is one pair)"),
        Param("shared_private.cov_dim", kind="categorical", choices=(16, 32, 64),
              why="d, the common width of the shared projections"),
    ) + selfmm.space("shared_private"),
    presets=selfmm.PRESETS,
    term_needs={**selfmm.TERM_NEEDS,
                "cov_ta": "the acoustic stream (a), and 'ta' in shared_private.pairs",
                "cov_tv": "the visual stream (v), and 'tv' in shared_private.pairs",
                "cov_av": "the acoustic and visual streams (a, v), and 'av' in shared_private.pairs"},
    modality_subsets=selfmm.MODALITY_SUBSETS,
)
