"""MM-CKD — Multi-Modal Contrastive Knowledge Distillation for incomplete modalities (Sang,
Funakoshi, Okumura, "Contrastive Knowledge Distillation for Robust Multimodal Sentiment Analysis",
arXiv 2410.08692). No public code, equations or result tables were found: what the project knows is
the outline in docs/METHODS.md, MM-CKD; every detail below it is *reconstruction*
and configurable.

A teacher (the core on the complete batch) and K students (the same core on masked copies of the
same batch) train jointly, online; their fused vectors are views of one sample for a multi-view
supervised contrast:

    L = L_task(teacher) + Σ_k L_task(student_k) + λ L_MVSC

- ``task``          L1 of the teacher's prediction on the complete batch;
- ``student_task``  Σ_k L1 of student k's prediction on its masked copy (the outline writes Σ;
                    ``student_reduction="mean"`` divides by K);
- ``mvsc``          multi-view supervised contrast over the (K+1)·N fused vectors, each passed
                    through one projection head and L2-normalised: SupCon with class positives
                    c(y) (`mmsa_core.losses.supcon_loss` on `class_labels(y, class_rule)`), or
                    SupCR on the raw scores with V = K+1 views (`mmsa_core.losses.supcr_loss`).

The core = `SharedEncoders` + a fusion -> fused vector h (the text width) -> `regression_head`.
Students' inputs come from `mmsa_core.data.masking_torch`: by default MMSA's token / frame masking
(docs/METRICS.md, Missing-modality robustness) at rate r = 0.2 (MMSA's default), drawn afresh for every training batch
and every student from a generator seeded by the run's seed and saved with the checkpoint.

Reconstruction choices (each one a field of `Params`):

- reconstruction: the fusion (``fusion``). ``"attention"`` (default) is the project's
  text-as-query `FusionBlock` per stream, h = mean over the streams of the fused state at the
  text [CLS] (text alone: h = the text [CLS] state) — the L1 baseline's model, so that MM-CKD's
  teacher differs from the baseline only by its training. ``"concat"`` is the plainest alternative:
  h = tanh(Linear(concat of the [CLS] states of the modalities present)) at the text width;
- reconstruction: the students' masking (``mask``): ``"tokens"`` = MMSA's token / frame masking at
  ``rate`` over ``mask_modalities`` (default T, A and V, the same r for all, as the field does);
  ``"modality"`` = whole-modality drop: each sample's A and V stream (those of ``mask_modalities``)
  is absent (zero frames, length 0) independently with probability ``rate``;
- reconstruction: weights (``shared_weights``): one core for teacher and students (default), or
  K + 1 independently initialised copies of the core (each its own encoders, fusion and head);
- reconstruction: one projection head (Dropout -> Linear(d_t -> ``proj_dim``)) shared by all
  views, so every view is contrasted in one space;
- reconstruction: the contrast (``contrast``): ``"supcon"`` (default; positives = same class,
  ``class_rule`` sign2 by default; the anchor's own other views are positives, since they share
  its class) or ``"supcr"`` (the project's SupCR, "intended" variant);
- reconstruction: ``stop_grad`` detaches the teacher's fused vectors inside ``mvsc`` only (the
  students are pulled towards the teacher, not the other way); the teacher still learns from
  ``task`` (and, with shared weights, from the students' passes);
- reconstruction: ``predict_with``: the teacher predicts at evaluation (default); ``"student"``
  predicts with student 0's weights. With shared weights student 0 *is* the teacher network and
  evaluation applies no masking (the robustness protocol masks the data, not the model), so the two
  coincide exactly; the switch matters only with ``shared_weights=False``;
- reconstruction: the defaults λ = 0.1, τ = 0.1 (SupCon's usual value), K = 2 — inside the search
  space (docs/METHODS.md, MM-CKD), not unpublished paper values;
- the shared fields: the dataset's shared settings (data, encoder shapes) and HSCL's optimisation
  (`mmsa_core.methods.hscl.OPTIMISATION`), as the L1 baseline.

Evaluate with the robustness protocol (docs/METRICS.md): train once, then test on
`mmsa_core.data.masking.masked_split` copies at every r ∈ `RATES` (the caller masks the data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from mmsa_core.methods.base import Method, MethodParams, Replacement
from mmsa_core.methods.hscl import OPTIMISATION
from mmsa_core.methods.space import LOSS_WEIGHT, Param

if TYPE_CHECKING:
    from mmsa_core.methods.base import RunConfig

TERMS = ("task", "student_task", "mvsc")
STUDENT_TERMS = ("student_task", "mvsc")  # the terms that need the students' forward passes


@dataclass(frozen=True)
class Params(MethodParams):
    """MM-CKD's hyper-parameters; every default is *reconstruction* (no public code or values)."""

    lam: float = 0.1  # λ, weight of L_MVSC
    tau: float = 0.1  # temperature of the contrast (SupCon or SupCR)
    students: int = 2  # K, number of masked students
    rate: float = 0.2  # r, masking rate of the students' inputs (MMSA's default 0.2)
    mask: Literal["tokens", "modality"] = "tokens"  # token/frame masking, or whole-modality drop
    mask_modalities: str = "tav"  # which modalities the students' masks touch (those configured)
    shared_weights: bool = True  # one core for all, or K + 1 separate copies
    fusion: Literal["attention", "concat"] = "attention"  # how the fused vector h is built
    contrast: Literal["supcon", "supcr"] = "supcon"  # class positives, or SupCR on the scores
    class_rule: Literal["sign2", "sign3", "round7"] = "sign2"  # classes for SupCon's positives
    stop_grad: bool = False  # detach the teacher's fused vectors inside mvsc
    student_reduction: Literal["sum", "mean"] = "sum"  # Σ_k (the outline's) or mean_k of the students' L1
    predict_with: Literal["teacher", "student"] = "teacher"  # who predicts at evaluation

    def problems(self) -> list[str]:
        p = []
        if self.lam < 0:
            p.append(f"lam={self.lam} must be >= 0")
        if not self.tau > 0:
            p.append(f"tau={self.tau} must be > 0")
        if isinstance(self.students, bool) or not isinstance(self.students, int) or self.students < 1:
            p.append(f"students={self.students!r} must be an integer >= 1 (K, the masked students)")
        if not 0.0 <= self.rate <= 1.0:
            p.append(f"rate={self.rate} must be in [0, 1]")
        mods = self.mask_modalities
        if not isinstance(mods, str) or not mods or any(m not in "tav" for m in mods) or len(set(mods)) != len(mods):
            p.append(f"mask_modalities={mods!r} must be a non-empty subset of 'tav' without repeats")
        elif self.mask == "modality" and not set(mods) & set("av"):
            p.append(f"mask='modality' drops whole acoustic/visual streams, but mask_modalities={mods!r} "
                     "names neither 'a' nor 'v'")
        return p


def possible_terms(cfg: "RunConfig") -> tuple[str, ...]:
    """Every term exists for every modality subset (text alone: the students see masked text)."""
    return TERMS


def term_weights(cfg: "RunConfig") -> dict[str, float]:
    return {"task": 1.0, "student_task": 1.0, "mvsc": cfg.method_params.lam}


def masked_modalities(cfg: "RunConfig") -> str:
    """The modalities the students' masks touch: ``mask_modalities`` ∩ the configured ones
    (whole-modality drop: only a and v)."""
    p: Params = cfg.method_params
    allowed = cfg.modalities if p.mask == "tokens" else "".join(m for m in cfg.modalities if m in "av")
    return "".join(m for m in "tav" if m in p.mask_modalities and m in allowed)


def _check(cfg: "RunConfig") -> list[str]:
    p: Params = cfg.method_params
    if p.problems():
        return []  # reported by Params.problems
    if not masked_modalities(cfg):
        what = "acoustic/visual stream" if p.mask == "modality" else "modality"
        return [(f"mmckd.mask_modalities={p.mask_modalities!r} with mmckd.mask={p.mask!r} masks no configured "
                 f"{what} (modalities={cfg.modalities!r}): the students would see the complete inputs")]
    return []


METHOD = Method(
    name="mmckd",
    description="MM-CKD: contrastive knowledge distillation from a complete-input teacher to "
                "masked-input students (Sang et al., arXiv 2410.08692)",
    citation="Sang, Funakoshi, Okumura. Contrastive Knowledge Distillation for Robust Multimodal "
             "Sentiment Analysis. arXiv:2410.08692, 2024.",
    published="none published (no public code, equations or result tables were found)",
    params=Params,
    terms=TERMS,
    runtime="mmsa_core.methods.mmckd.runtime",
    possible_terms=possible_terms,
    term_weights=term_weights,
    check=_check,
    space=(
        Param("mmckd.lam", 1e-3, 1.0, True, "multi-view contrast " + LOSS_WEIGHT),
        Param("mmckd.tau", 0.05, 1.0, True, "contrast temperature: acts through ratios, so log scale"),
        Param("mmckd.students", 1, 3, kind="int", why="K, the number of masked students"),
        Param("mmckd.rate", 0.1, 0.7, False, "students' masking rate: a bounded fraction, linear scale"),
        Param("mmckd.stop_grad", kind="categorical", choices=(False, True),
              why="stop-gradient on the teacher side of the contrast"),
        Param("mmckd.contrast", kind="categorical", choices=("supcon", "supcr"),
              why="class positives (SupCon) or SupCR on the raw scores"),
    ),
    presets=OPTIMISATION,  # no published values: HSCL's optimisation, as the L1 baseline
    term_needs={"student_task": "the K masked students (their forward passes)",
                "mvsc": "two or more views: the teacher and at least one masked student"},
    replacements=(
        Replacement("supcon", "supcr", {"contrast": "supcr"}, affects=("mvsc",),
                    why="class positives -> SupCR on the raw scores, on the same K+1 views"),
        Replacement("tokens", "modality", {"mask": "modality"}, affects=STUDENT_TERMS,
                    why="the students' token/frame masking -> whole-modality drop at the same rate"),
    ),
)
