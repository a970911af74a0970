"""CLFA — contrastive cross-modal feature alignment guided by a frozen reference space, ported to
video sentiment (Zhang, Chang, Wu. LREC-COLING 2024, arXiv 2403.06355; docs/METHODS.md, CLFA).

CLFA is an image–text method: the pooled output of each student encoder (BERT, ViT) goes through a
per-modality MLP (768 -> 1536 -> 512) and is aligned, L2-normalised, to the frozen CLIP embedding of
the same sample with a symmetric InfoNCE (in-batch negatives, τ = 0.1); L = α·L_con + β·L_task,
α = β = 1. The authors' shipped run (``train_s.sh``): masked-mean pooling, lr 1e-5, warm-up 0.05,
30 epochs, seed 2022. Here, over the shared encoders (`mmsa_core.models.blocks.SharedEncoders`):

    u_m      = pool(E_m)                       m ∈ cfg.modalities (t always; a, v when present)
    z_m      = norm(P_m(u_m))                  P_m: Linear(d_m -> h_m) -> ReLU -> Linear(h_m -> W)
    r        = norm(P_ref(e_ref))              e_ref: frozen sentence embedding of the transcript
    L        = β · L1(ŷ, y) + α · Σ_m InfoNCE_sym(z_m, r)        terms: task, align_t, align_a, align_v
    ŷ        = regression_head([u_t; u_a; u_v])

Every loss term is its own name (``align_t``, ``align_a``, ``align_v``, each weighted α; ``task``
weighted β) so an ablation can switch each off; a switched-off term is not computed, and when every
alignment term is off the reference embeddings are not even computed.

Reconstruction (the public record does not pin these; each is configurable):

- reconstruction: the reference space. No raw frames exist in the feature files, so the frozen
  reference is a frozen text encoder's sentence embedding of the transcript (``reference_encoder``,
  default ``minilm``: the packaged all-MiniLM-L6-v2, mean pooling + L2 norm, the sentence-transformers
  recipe), computed once per dataset and cached on disk (`mmsa_core.methods.clfa.reference`).
- reconstruction: the reference's width. CLIP's embedding has the students' common width (512);
  MiniLM's has 384, so it needs a map P_ref to the common width W. Default ``reference_map=
  "orthogonal"``: a FROZEN random (semi-)orthogonal matrix, a buffer drawn from the run's seed. For
  W ≥ 384 it is an isometry — the reference space's cosine geometry, which is what the InfoNCE reads,
  is exactly that of the frozen encoder, as CLFA's frozen CLIP target is; the reference is not
  trainable and cannot drift towards the students. For W < 384 (the searched 256) it is a random
  orthogonal projection (Johnson–Lindenstrauss: the geometry is kept approximately). ``"linear"`` /
  ``"mlp"`` make P_ref trainable instead (a linear map, or an MLP shaped like P_m): a moving target,
  closer to a two-tower CLIP than to CLFA's frozen teacher.
- reconstruction: the MLP of the acoustic and visual streams. The authors' is 768 -> 1536 -> 512
  (hidden = 2 × input width); for every modality here hidden = 2 × its input width (``mlp_hidden=0``)
  or a fixed ``mlp_hidden``; dropout (the shared ``dropout``) in front, ReLU in between.
- reconstruction: pooling over the acoustic/visual streams. ``pooling="mean"`` averages every valid
  position of the Transformer output — the text's real tokens (its [CLS] and [SEP] included, as
  BERT's attention mask has it) and a stream's valid frames plus its learned [CLS] (which also keeps
  a stream with no valid frame defined); ``"cls"`` takes the [CLS] state of each encoder.
- reconstruction: the task head. CLFA's own fusion is image–text specific; here it is kept simple:
  the concatenated pooled representations [u_t; u_a; u_v] -> the shared `regression_head`
  (``head_input="pooled"``), or the concatenated projections [P_t(u_t); ...] (``"projected"``).
- reconstruction: the learning-rate schedule. The authors warm up over 5 % of the steps; the shared
  trainer has StepLR only and is not changed for one method, and a runtime has no handle on the
  optimiser, so warm-up is NOT implemented: the presets hold the learning rate constant
  (``lr_step_epoch`` = ``max_epochs`` = 30). ``lr_text`` = 1e-5 as the authors'; ``lr_other`` keeps the
  shared 1e-3, since the acoustic/visual Transformers here are trained from scratch (the authors'
  students were all pretrained).
- Alignment over in-batch negatives only: a duplicated transcript in the batch is a (false)
  negative, as in CLIP. A batch of one contributes 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from mmsa_core.methods.base import Method, MethodParams, Replacement
from mmsa_core.methods.space import Param

if TYPE_CHECKING:
    from mmsa_core.methods.base import RunConfig

MODALITIES = ("t", "a", "v")
ALIGN_TERMS = tuple(f"align_{m}" for m in MODALITIES)
TERMS = ("task", *ALIGN_TERMS)


@dataclass(frozen=True)
class Params(MethodParams):
    """CLFA's hyper-parameters; defaults = the paper and the authors' shipped run (``train_s.sh``)."""

    alpha: float = 1.0  # weight of each alignment term (the paper's α)
    beta: float = 1.0  # weight of the task term (the paper's β)
    tau: float = 0.1  # InfoNCE temperature
    width: int = 512  # common width W of the projections (the authors' MLP ends at 512)
    pooling: Literal["mean", "cls"] = "mean"  # masked mean over valid positions (shipped run) or [CLS]
    mlp_hidden: int = 0  # hidden width of each P_m; 0 = 2 × the modality's input width (768 -> 1536)
    reference_encoder: str = "minilm"  # frozen encoder of the reference space: minilm, tiny, or a HF dir
    reference_map: Literal["orthogonal", "linear", "mlp"] = "orthogonal"  # P_ref: frozen or trainable
    reference_max_len: int = 256  # tokens of a transcript the reference encoder reads (MiniLM: 256)
    head_input: Literal["pooled", "projected"] = "pooled"  # what the regression head reads

    def problems(self) -> list[str]:
        p = []
        if not self.alpha >= 0:
            p.append(f"alpha={self.alpha} must be >= 0")
        if not self.beta > 0:
            p.append(f"beta={self.beta} must be > 0 (the task term trains the regressor)")
        if not self.tau > 0:
            p.append(f"tau={self.tau} must be > 0")
        if self.width < 1:
            p.append(f"width={self.width} must be >= 1")
        if self.mlp_hidden < 0:
            p.append(f"mlp_hidden={self.mlp_hidden} must be >= 0 (0 = twice the input width)")
        if self.reference_max_len < 2:
            p.append(f"reference_max_len={self.reference_max_len} must be >= 2 ([CLS] and [SEP])")
        from mmsa_core.models.text_encoder import resolve_text_encoder  # torch-free

        try:
            resolve_text_encoder(self.reference_encoder)
        except (ValueError, RuntimeError) as exc:
            p.append(f"reference_encoder={self.reference_encoder!r}: {exc}")
        return p


def possible_terms(cfg: "RunConfig") -> tuple[str, ...]:
    """The task, and one alignment term per modality of the config (text is always there)."""
    return ("task", *(f"align_{m}" for m in MODALITIES if m in cfg.modalities))


def term_weights(cfg: "RunConfig") -> dict[str, float]:
    p: Params = cfg.method_params
    return {"task": p.beta, **{t: p.alpha for t in ALIGN_TERMS}}


_OPTIM = dict(lr_text=1e-5, max_epochs=30, lr_step_epoch=30, seed=2022)  # train_s.sh; constant lr

METHOD = Method(
    name="clfa",
    description="CLFA ported to video sentiment: every modality aligned to a frozen reference "
                "embedding of the transcript (Zhang et al., LREC-COLING 2024)",
    citation="Zhang, Chang, Wu. Multi-modal Semantic Understanding with Contrastive Cross-modal Feature "
             "Alignment. LREC-COLING 2024 (arXiv:2403.06355).",
    published="none published — CLFA has no MOSI/MOSEI result (an image–text method); this port has "
              "no baseline to match",
    params=Params,
    terms=TERMS,
    runtime="mmsa_core.methods.clfa.runtime",
    possible_terms=possible_terms,
    term_weights=term_weights,
    space=(
        Param("clfa.alpha", 0.1, 5.0, True, "alignment loss weight; the authors swept {0, 0.1, 0.2, 5}: "
                                            "spans decades, so log scale"),
        Param("clfa.tau", 0.03, 0.3, True, "InfoNCE temperature: acts through ratios, so log scale"),
        Param("clfa.width", kind="categorical", choices=(256, 512), why="projection width"),
        Param("clfa.pooling", kind="categorical", choices=("mean", "cls"),
              why="masked mean (the authors' shipped run) or the [CLS] state"),
    ),
    presets={
        "mosi": dict(_OPTIM),
        "mosei": dict(_OPTIM),
    },
    term_needs={"align_t": "the text (always present)",
                "align_a": "the acoustic stream (a)",
                "align_v": "the visual stream (v)"},
    replacements=(
        Replacement("mean", "cls", {"pooling": "cls"}, affects=TERMS,
                    why="pool each encoder by its [CLS] state instead of the masked mean"),
        Replacement("frozen_reference_map", "trainable_reference_map", {"reference_map": "linear"},
                    affects=ALIGN_TERMS,
                    why="a trainable linear P_ref instead of the frozen random-orthogonal map"),
    ),
)
