"""Self-MM — self-supervised multi-task learning with unimodal label generation.

Yu, Xu, Yuan, Wu. Learning Modality-Specific Representations with Self-Supervised Multi-Task
Learning for Multimodal Sentiment Analysis. AAAI 2021 (arXiv 2102.04830). Public code:
thuiar/Self-MM and thuiar/MMSA (``trains/multiTask/SELF_MM.py``, the same training code). The facts
used here are collected in docs/METHODS.md, Self-MM.

Four heads — fused (M), text (T), acoustic (A), visual (V) — over the shared encoders
(`mmsa_core.models.blocks.SharedEncoders`), and one loss per head:

    L = mean|ŷ_M − y_M|  +  λ_uni · Σ_{s ∈ T,A,V} mean(tanh|y_s − y_M| · |ŷ_s − y_s|)

kept as the terms ``task`` (fused head, weight 1) and ``uni_t``, ``uni_a``, ``uni_v`` (weight
``uni_weight``; 1 in the paper). y_s are the generated unimodal labels of the ULGM
(`mmsa_core.methods.selfmm.ulgm`): a bank of every training sample's features per head, class
centres from each head's *current* labels (zero excluded), δ = (d_n − d_p)/(d_p + ε),
ŷ_s = ½(δ_s/δ_f)·y_M + ½(y_M + δ_s − δ_f) clamped to [−H, H], and from epoch 2 the momentum update
y_s ← (n−1)/(n+1)·y_s + 2/(n+1)·ŷ_s. In epoch 1 y_s = y_M, so w_s = tanh 0 = 0 and only the fused
head learns. Inside a batch: loss → backward → update the batch's labels with the centres of the
previous batch → write the batch's features into the bank → recompute the centres. Since a sample's
loss comes before its own update, every sample still has y_s = y_M when its epoch-2 loss is taken:
the unimodal terms are 0 in epochs 1 and 2 and the unimodal heads first learn in epoch 3 (as in
Self-MM's code).

Model (Self-MM's ``models/multiTask/SELF_MM.py`` over this project's encoders):

    u_t = text [CLS] state (d_t)                      Self-MM: BERT [CLS], text_out = 768
    u_a = Linear(d_a -> audio_out)(acoustic [CLS])    Self-MM: LSTM subnet -> Linear(-> audio_out)
    u_v = Linear(d_v -> video_out)(visual [CLS])      Self-MM: LSTM subnet -> Linear(-> video_out)
    fused head:  h_f = ReLU(W1 · Dropout([u_t; u_a; u_v]))  (post_fusion_dim; the bank feature)
                 ŷ_M = W3 · ReLU(W2 · h_f)
    head s:      h_s = ReLU(W1_s · Dropout(u_s))            (post_<s>_dim; the bank feature)
                 ŷ_s = W3_s · ReLU(W2_s · h_s)

- *reconstruction*: the acoustic/visual LSTM subnets are replaced by the shared Transformer stream
  encoders' [CLS] states; the subnet's output Linear (``audio_out``/``video_out``, 16/32) is kept
  (0 = no Linear, the [CLS] state itself).
- Fusion is Self-MM's own: concatenation of the three encoder outputs into the fused MLP.
- Widths (fused 128, T 32, A 16, V 32), head dropouts, per-group learning rates and weight decays
  are thuiar/MMSA's ``config_regression.json`` (``self_mm``), the record docs/METHODS.md (Self-MM)
  pins (its widths and ``excludeZero``). thuiar/Self-MM's own ``config_regression.py`` differs on MOSI (T 64, other
  dropouts, lr_audio 1e-3, lr_video 1e-4, weight_decay_audio 0.01): keep the fields, set them.
- Batch size 32: thuiar/Self-MM (both datasets) and MMSA on MOSEI; MMSA's MOSI entry has 16.
- Optimiser: Adam over five groups as Self-MM (BERT with decay, BERT bias/LayerNorm without decay,
  acoustic subnet, visual subnet, the rest). Self-MM has no LR schedule (preset: ``lr_gamma=1``),
  no gradient clipping (preset: ``grad_clip=1e9``, a bound that never binds: the shared loop always
  clips), early stopping after 8 epochs (``patience=8``), selection on the fused head's validation
  L1 (``select_metric='mae'``), evaluation prediction = the fused head. No maximum epoch count is
  pinned (Self-MM loops until early stopping): the shared ``max_epochs`` stands.
- ``update_epochs = 4`` is gradient accumulation over 4 batches (`MethodRuntime.accumulation_steps`):
  one Adam step on the *sum* of the 4 batches' gradients, as Self-MM's code (``loss.backward()`` per
  batch, unscaled). The sum, not the mean: Adam is invariant to the gradient's scale only without
  weight decay, and its ``weight_decay`` adds wd·p to the gradient at each step, so a mean would
  give every group 4× Self-MM's decay. The shared loop's clipping bound applies to that summed
  gradient (the presets' 1e9, shared with `shared_private`, never binds). The shared loop also steps
  on a final incomplete group at the end of an epoch (Self-MM's loop drops those gradients).
- Precision: the heads (bank features h_s and predictions ŷ) run in fp32 outside the trainer's
  autocast (bf16 on CUDA, ``amp``), on the encoders' output cast to fp32, so the bank holds fp32
  features as Self-MM's code does (its whole model runs in fp32); features rounded to bf16 (8
  significant bits) move the generated labels, most where δ_f ≈ 0 amplifies the rounding. The
  encoders keep the run's precision, as in every method. On the CPU there is no autocast and
  nothing changes.
- *reconstruction*: a class with no member (all labels of a head on one side) keeps its previous
  centre (zeros at the start); Self-MM's code would take the mean of nothing (NaN).

Modalities: ``ta``, ``tv`` and ``tav``. With one stream missing its head and label do not exist
(the fused head concatenates what is there). Text alone is not supported: the fused head would see
the text head's input only, and the text label would be generated from two views of the same
vector — no cross-modal signal, the point of the method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmsa_core.methods.base import Method, MethodParams
from mmsa_core.methods.space import Param

if TYPE_CHECKING:
    from mmsa_core.methods.base import RunConfig

TERMS = ("task", "uni_t", "uni_a", "uni_v")
UNI_TERMS = ("uni_t", "uni_a", "uni_v")
MODALITY_SUBSETS = ("ta", "tv", "tav")

PUBLISHED = ("Yu et al., AAAI 2021 (BERT text, unaligned MMSA features): CMU-MOSI MAE 0.713, Corr 0.798, "
             "Acc-2 84.00 / 85.98 (has0 / non0), F1 84.42 / 85.95; CMU-MOSEI MAE 0.530, Corr 0.765, "
             "Acc-2 82.81 / 85.17, F1 82.53 / 85.30. This port uses the project's shared encoders "
             "(Transformer stream encoders instead of LSTM subnets): compare trends, not digits.")
CITATION = ("Yu, Xu, Yuan, Wu. Learning Modality-Specific Representations with Self-Supervised "
            "Multi-Task Learning for Multimodal Sentiment Analysis. AAAI 2021, pp. 10790-10797.")


@dataclass(frozen=True)
class Params(MethodParams):
    """Self-MM's hyper-parameters; defaults = its MOSI configuration (see the module docstring)."""

    uni_weight: float = 1.0  # multiplier of uni_t/uni_a/uni_v (reconstruction: Self-MM has none, = 1)
    update_epochs: int = 4  # gradient accumulation over this many batches
    # ULGM
    label_clip: float = 3.0  # H: generated labels are clamped to [-H, H]
    exclude_zero: bool = True  # class centres: positives y > 0 (True) or y >= 0 (Self-MM repo's first code)
    eps: float = 1e-8  # ε of δ = (d_n − d_p)/(d_p + ε) and δ_s/(δ_f + ε)
    # widths: acoustic/visual subnet outputs, post-encoder (bank) features
    audio_out: int = 16  # 0 = the acoustic [CLS] state itself
    video_out: int = 32  # 0 = the visual [CLS] state itself
    post_fusion_dim: int = 128
    post_text_dim: int = 32
    post_audio_dim: int = 16
    post_video_dim: int = 32
    post_fusion_dropout: float = 0.0
    post_text_dropout: float = 0.1
    post_audio_dropout: float = 0.1
    post_video_dropout: float = 0.0
    # optimiser groups beyond the shared lr_text (BERT), lr_other and weight_decay (the rest)
    lr_audio: float = 5e-3
    lr_video: float = 5e-3
    weight_decay_text: float = 1e-3  # BERT weights; its biases and LayerNorms get no decay
    weight_decay_audio: float = 1e-3
    weight_decay_video: float = 1e-3

    def problems(self) -> list[str]:
        p = []
        if self.uni_weight < 0:
            p.append(f"uni_weight={self.uni_weight} must be >= 0")
        if self.update_epochs < 1:
            p.append(f"update_epochs={self.update_epochs} must be >= 1 (batches per optimiser step)")
        if not self.label_clip > 0:
            p.append(f"label_clip={self.label_clip} must be > 0")
        if not self.eps > 0:
            p.append(f"eps={self.eps} must be > 0")
        for name in ("audio_out", "video_out"):
            if getattr(self, name) < 0:
                p.append(f"{name}={getattr(self, name)} must be >= 0 (0 = no output layer)")
        for name in ("post_fusion_dim", "post_text_dim", "post_audio_dim", "post_video_dim"):
            if getattr(self, name) < 1:
                p.append(f"{name}={getattr(self, name)} must be >= 1")
        for name in ("post_fusion_dropout", "post_text_dropout", "post_audio_dropout", "post_video_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                p.append(f"{name}={getattr(self, name)} must be in [0, 1)")
        for name in ("lr_audio", "lr_video"):
            if not getattr(self, name) > 0:
                p.append(f"{name}={getattr(self, name)} must be > 0")
        for name in ("weight_decay_text", "weight_decay_audio", "weight_decay_video"):
            if getattr(self, name) < 0:
                p.append(f"{name}={getattr(self, name)} must be >= 0")
        return p


def possible_terms(cfg: "RunConfig") -> tuple[str, ...]:
    """``task`` and one unimodal term per modality of the configuration."""
    return ("task",) + tuple(f"uni_{m}" for m in "tav" if m in cfg.modalities)


def term_weights(cfg: "RunConfig") -> dict[str, float]:
    w = float(cfg.method_params.uni_weight)
    return {"task": 1.0, "uni_t": w, "uni_a": w, "uni_v": w}


TERM_NEEDS = {"uni_a": "the acoustic stream (a)", "uni_v": "the visual stream (v)"}


def space(method: str) -> tuple[Param, ...]:
    """Self-MM's searched keys, namespaced by `method` (Self-MM itself, or a method built on it)."""
    with_a, with_v = {"modalities": ("ta", "tav")}, {"modalities": ("tv", "tav")}
    return (
        Param(f"{method}.uni_weight", 1e-2, 10.0, True,
              "global multiplier of the three unimodal terms (reconstruction: the paper uses 1); "
              "a loss weight spanning decades"),
        Param(f"{method}.update_epochs", kind="categorical", choices=(1, 2, 4, 8),
              why="batches per optimiser step (Self-MM: 4); powers of two"),
        Param(f"{method}.post_fusion_dim", kind="categorical", choices=(64, 128, 256),
              why="fused bank-feature width (Self-MM: 128)"),
        Param(f"{method}.post_text_dim", kind="categorical", choices=(16, 32, 64),
              why="text bank-feature width (MMSA: 32, thuiar/Self-MM: 64)"),
        Param(f"{method}.post_audio_dim", kind="categorical", choices=(8, 16, 32), when=with_a,
              why="acoustic bank-feature width (Self-MM: 16); only with the acoustic stream"),
        Param(f"{method}.post_video_dim", kind="categorical", choices=(16, 32, 64), when=with_v,
              why="visual bank-feature width (Self-MM: 32); only with the visual stream"),
    )


# Self-MM's optimisation for the shared fields (module docstring); MOSEI's shared encoders take
# HSCL's MOSEI stream settings (the head counts must divide MOSEI's widths 74 / 35).
_SHARED = dict(batch_size=32, lr_text=5e-5, lr_other=1e-3, weight_decay=1e-3, patience=8,
               lr_gamma=1.0, grad_clip=1e9, select_metric="mae")
PRESETS = {
    "mosi": dict(_SHARED),
    "mosei": dict(_SHARED, weight_decay=1e-2, lr_audio=5e-3, lr_video=1e-4,
                  weight_decay_text=1e-3, weight_decay_audio=0.0, weight_decay_video=0.0,
                  post_fusion_dim=128, post_text_dim=32, post_audio_dim=16, post_video_dim=32,
                  post_fusion_dropout=0.1, post_text_dropout=0.0, post_audio_dropout=0.0,
                  post_video_dropout=0.0),
}

METHOD = Method(
    name="selfmm",
    description="Self-MM: self-supervised multi-task learning with unimodal label generation "
                "(Yu et al., AAAI 2021)",
    citation=CITATION,
    published=PUBLISHED,
    params=Params,
    terms=TERMS,
    runtime="mmsa_core.methods.selfmm.runtime",
    possible_terms=possible_terms,
    term_weights=term_weights,
    space=space("selfmm"),
    presets=PRESETS,
    term_needs=TERM_NEEDS,
    modality_subsets=MODALITY_SUBSETS,
)
