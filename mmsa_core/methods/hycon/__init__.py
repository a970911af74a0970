"""HyCon — hybrid contrastive learning of tri-modal representation (Mai, Zeng, Zheng, Hu;
IEEE Trans. Affective Computing 2022, arXiv 2109.01797). No public code exists; what the project
knows is in docs/METHODS.md, HyCon.

Over the shared encoders (`mmsa_core.models.blocks.SharedEncoders`): u_m = the [CLS] state of
modality m, z_m = normalise(g_m(u_m)) with g_m a `ProjectionHead` (u_m's width -> ``proj_dim``), and

    L = L_task + λ_intra L_intra + λ_inter L_inter + λ_semi L_semi + ρ L_refine

- ``task``   L1 on the fused prediction;
- ``intra``  Σ_m SupCon over {z_m^i}_i, positives c_i = c_j (defined for text alone too);
- ``inter``  SupCon with anchors z_m^i contrasted only with z_n^j, n ≠ m (contrast mask),
             positives c_i = c_j, j = i included;
- ``semi``   Σ_{m<n} mean_i (μ − cos(z_m^i, z_n^i))², μ = the modality margin;
- ``refine`` mean over positive pairs of (target − cos)², target ``refine_target_intra`` (1) for
             intra-modal pairs and μ for inter-modal ones (``refine_target_inter``); its weight is ρ.

Classes c = `mmsa_core.losses.class_labels(y, class_rule)`, by default ``sign2`` (y ≥ 0, the
project's rule; the paper's outline reads y > 0 — the two differ only at y = 0).

Every detail below the published outline is *reconstruction* and configurable:

- reconstruction: the fusion for the task head is NOT HyCon's (the project does not reproduce it):
  concatenation of the u_m present -> Dropout -> Linear(-> ``fusion_dim``) -> ReLU ->
  `regression_head`;
- reconstruction: g_m is one linear `ProjectionHead` per modality (no ReLU) to the shared ``proj_dim``;
- reconstruction: ``inter`` with several modality pairs sums one SupCon per pair (``inter_pairing=
  "pairs"``, each over the 2N vectors of the pair) or runs one SupCon over all K·N vectors with the
  cross-modal contrast mask (``"joint"``); identical for two modalities;
- reconstruction: the ``semi`` target μ = ``margin`` (0.8; μ = 1 is plain alignment);
- reconstruction: the ``refine`` targets (an unofficial re-implementation's reading: 1 intra, μ inter;
  ``refine_target_inter`` may be "margin" or a number), one mean over all positive (ordered) pairs;
- reconstruction: the hard-pair weighting (the journal's "pair selection", off by default,
  ``hard_negatives``): negatives in SupCon's denominator weighted by
  |N(a)| · softmax_{k∈N(a)}(β · cos(a, k)) (mean 1, detached; β = ``hard_beta``), positives weight 1
  — Robinson et al.'s importance weighting; it applies to ``intra`` and ``inter``;
- reconstruction: the defaults λ_intra = λ_inter = λ_semi = 0.1, τ = 0.1 (SupCon's usual value),
  μ = 0.8, ρ = 0.1 — inside the search space (docs/METHODS.md, HyCon), not the paper's (unpublished) values;
- the shared fields: the dataset's shared settings (data, encoder shapes) and HSCL's optimisation
  (`mmsa_core.methods.hscl.OPTIMISATION`), as the L1 baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from mmsa_core.methods.base import Method, MethodParams
from mmsa_core.methods.hscl import OPTIMISATION
from mmsa_core.methods.space import LOSS_WEIGHT, Param

if TYPE_CHECKING:
    from mmsa_core.methods.base import RunConfig

TERMS = ("task", "intra", "inter", "semi", "refine")
CLASS_RULES = ("sign2", "sign3", "round7")  # = mmsa_core.losses.CLASS_RULES (kept torch-free here)


@dataclass(frozen=True)
class Params(MethodParams):
    """HyCon's hyper-parameters; every default is *reconstruction* (no public code or values)."""

    lambda_intra: float = 0.1  # weight of the intra-modal SupCon term
    lambda_inter: float = 0.1  # weight of the inter-modal SupCon term
    lambda_semi: float = 0.1  # weight of the semi-contrastive term
    rho: float = 0.1  # weight of the refinement term
    tau: float = 0.1  # SupCon temperature (intra and inter)
    margin: float = 0.8  # modality margin μ: target cosine of one sample's modalities
    class_rule: Literal["sign2", "sign3", "round7"] = "sign2"  # classes of the scores
    inter_pairing: Literal["pairs", "joint"] = "pairs"  # one SupCon per modality pair, or one over all
    refine_target_intra: float = 1.0  # refinement target cosine of intra-modal positive pairs
    refine_target_inter: str = "margin"  # "margin" (= μ) or a number in [-1, 1]
    hard_negatives: bool = False  # weight the SupCon negatives by hardness
    hard_beta: float = 1.0  # β of the hard-negative weights exp(β·cos) (when hard_negatives)
    fusion_dim: int = 128  # width of the concatenation fusion before the regression head

    def inter_target(self) -> float:
        """The refinement target of inter-modal positive pairs (μ unless a number is given)."""
        if self.refine_target_inter.strip().lower() == "margin":
            return float(self.margin)
        return float(self.refine_target_inter)

    def problems(self) -> list[str]:
        p = [f"{n}={getattr(self, n)} must be >= 0"
             for n in ("lambda_intra", "lambda_inter", "lambda_semi", "rho", "hard_beta") if getattr(self, n) < 0]
        if not self.tau > 0:
            p.append(f"tau={self.tau} must be > 0")
        for n in ("margin", "refine_target_intra"):
            if not -1.0 <= getattr(self, n) <= 1.0:
                p.append(f"{n}={getattr(self, n)} must be a cosine in [-1, 1]")
        try:
            target = self.inter_target()
        except ValueError:
            p.append(f"refine_target_inter={self.refine_target_inter!r} must be 'margin' or a number in [-1, 1]")
        else:
            if not -1.0 <= target <= 1.0:
                p.append(f"refine_target_inter={self.refine_target_inter!r} must be 'margin' or a number "
                         "in [-1, 1]")
        if self.fusion_dim < 1:
            p.append(f"fusion_dim={self.fusion_dim} must be >= 1")
        return p


def possible_terms(cfg: "RunConfig") -> tuple[str, ...]:
    """intra and refine exist for any modality set; inter and semi need two modalities."""
    if len(cfg.modalities) > 1:
        return TERMS
    return ("task", "intra", "refine")


def term_weights(cfg: "RunConfig") -> dict[str, float]:
    p: Params = cfg.method_params
    return {"task": 1.0, "intra": p.lambda_intra, "inter": p.lambda_inter, "semi": p.lambda_semi,
            "refine": p.rho}


METHOD = Method(
    name="hycon",
    description="HyCon: hybrid (intra-/inter-modal, semi-) contrastive learning (Mai et al., TAFFC 2022)",
    citation="Mai, Zeng, Zheng, Hu. Hybrid Contrastive Learning of Tri-Modal Representation for "
             "Multimodal Sentiment Analysis. IEEE Transactions on Affective Computing 14(3), 2023 "
             "(early access 2022); arXiv:2109.01797.",
    published="BERT text, aligned features (MAG-BERT's, not MMSA's: compare trends, not digits): "
              "MOSI Acc-2 85.2, F1 85.1, Acc-7 46.6, MAE 0.713, Corr 0.790; "
              "MOSEI Acc-2 85.4, F1 85.6, Acc-7 52.8, MAE 0.601, Corr 0.776",
    params=Params,
    terms=TERMS,
    runtime="mmsa_core.methods.hycon.runtime",
    possible_terms=possible_terms,
    term_weights=term_weights,
    space=(
        Param("hycon.lambda_intra", 1e-3, 1.0, True, "intra-modal " + LOSS_WEIGHT),
        Param("hycon.lambda_inter", 1e-3, 1.0, True, "inter-modal " + LOSS_WEIGHT),
        Param("hycon.lambda_semi", 1e-3, 1.0, True, "semi-contrastive " + LOSS_WEIGHT),
        Param("hycon.tau", 0.05, 1.0, True, "SupCon temperature: acts through ratios, so log scale"),
        Param("hycon.margin", 0.5, 1.0, False, "modality margin μ: a cosine, bounded, linear scale"),
        Param("hycon.rho", 0.0, 1.0, False, "refinement weight ρ; the range includes 0 (off), so linear"),
        Param("hycon.class_rule", kind="categorical", choices=CLASS_RULES,
              why="how scores become classes for the positives"),
        Param("hycon.hard_negatives", kind="categorical", choices=(False, True),
              why="hard-negative pair weighting switch"),
        Param("hycon.hard_beta", 0.1, 5.0, True, "strength of the hard-negative weighting (a scale "
              "inside exp), only with the switch on", when={"hycon.hard_negatives": (True,)}),
    ),
    # HyCon's paper gives no values for these encoders: HSCL's optimisation, as the L1 baseline
    presets=OPTIMISATION,
    term_needs={"intra": "any modality (text alone suffices)",
                "inter": "at least two modalities (text and a or v)",
                "semi": "at least two modalities (text and a or v)",
                "refine": "any modality (inter-modal pairs only with two or more)"},
)
