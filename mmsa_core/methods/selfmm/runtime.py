"""Self-MM's torch side: the four-head model over the shared encoders, its loss terms, and the
runtime that keeps the ULGM label bank (`mmsa_core.methods.selfmm.ulgm`) and updates it in
Self-MM's order. The package docstring (`mmsa_core.methods.selfmm`) says what is pinned and what is
reconstruction.

Extension points for methods built on Self-MM (`mmsa_core.methods.shared_private`):
`SelfMMModel.extra_fusion_width` / `extend` / `fusion_inputs` (more modules, more fused inputs) and
`SelfMMRuntime.extra_terms` (more loss terms from the same forward pass).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmsa_core.methods.runtime import MethodRuntime, full_precision
from mmsa_core.methods.selfmm.ulgm import FUSED, LabelBank
from mmsa_core.models.blocks import SharedEncoders

if TYPE_CHECKING:
    from mmsa_core.config import RunConfig
    from mmsa_core.data import MSADataset
    from mmsa_core.data.batching import Batch

UNIMODAL = ("t", "a", "v")
BERT_NO_DECAY = ("bias", "LayerNorm.bias", "LayerNorm.weight")  # Self-MM's no-decay names


@dataclass
class SelfMMOutput:
    """One forward pass; nothing is stashed on the module."""

    prediction: torch.Tensor | None = None  # (N,) the fused head ŷ_M
    predictions: dict[str, torch.Tensor] = field(default_factory=dict)  # "t","a","v" -> (N,) ŷ_s
    features: dict[str, torch.Tensor] = field(default_factory=dict)  # "f","t","a","v" -> (N, w) bank features
    representations: dict[str, torch.Tensor] = field(default_factory=dict)  # u_t, u_a, u_v (encoder outputs)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # what an extension adds


class PostHead(nn.Module):
    """Self-MM's post layers: h = ReLU(W1 · Dropout(x)) (the bank feature), ŷ = W3 · ReLU(W2 · h).

    Runs in fp32 outside autocast (the trainer's bf16 on CUDA): h is written into the ULGM bank, and
    Self-MM's code computes it in fp32; rounding it to bf16 moves the generated labels. The heads
    are small MLPs, so this costs little; their input (the encoders' output) keeps the encoders'
    precision.
    """

    def __init__(self, width: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.layer_1 = nn.Linear(width, hidden)
        self.layer_2 = nn.Linear(hidden, hidden)
        self.layer_3 = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with full_precision(x.device):
            h = F.relu(self.layer_1(self.dropout(x.float())))
            return self.layer_3(F.relu(self.layer_2(h))).squeeze(-1), h


def bank_widths(cfg: "RunConfig") -> dict[str, int]:
    """Width of each head's bank feature ("f" and every modality of the configuration)."""
    p = cfg.method_params
    widths = {FUSED: p.post_fusion_dim, "t": p.post_text_dim, "a": p.post_audio_dim, "v": p.post_video_dim}
    return {k: w for k, w in widths.items() if k == FUSED or k in cfg.modalities}


class SelfMMModel(nn.Module):
    """Shared encoders -> u_t, u_a, u_v -> the fused head and one head per modality."""

    def __init__(self, cfg: "RunConfig", *, audio_dim: int, vision_dim: int) -> None:
        super().__init__()
        p = cfg.method_params
        self.modalities = tuple(m for m in UNIMODAL if m in cfg.modalities)
        self.encoders = SharedEncoders(cfg, audio_dim=audio_dim, vision_dim=vision_dim)
        outs = {"a": p.audio_out, "v": p.video_out}
        self.subnet_out = nn.ModuleDict({m: nn.Linear(self.encoders.widths[m], outs[m])
                                         for m in self.encoders.stream_names if outs[m] > 0})
        self.rep_widths = {"t": self.encoders.text_dim}  # widths of u_t, u_a, u_v
        for m in self.encoders.stream_names:
            self.rep_widths[m] = outs[m] if m in self.subnet_out else self.encoders.widths[m]
        fused_width = sum(self.rep_widths.values()) + self.extra_fusion_width(cfg)
        widths = bank_widths(cfg)
        dropouts = {FUSED: p.post_fusion_dropout, "t": p.post_text_dropout, "a": p.post_audio_dropout,
                    "v": p.post_video_dropout}
        self.heads = nn.ModuleDict({FUSED: PostHead(fused_width, widths[FUSED], dropouts[FUSED])})
        for m in self.modalities:
            self.heads[m] = PostHead(self.rep_widths[m], widths[m], dropouts[m])

    # --- extension points -----------------------------------------------------------------------
    def extra_fusion_width(self, cfg: "RunConfig") -> int:
        """Build extra modules (before the heads) and return the width they add to the fused input."""
        return 0

    def extend(self, out: SelfMMOutput) -> None:
        """Add to `out` (e.g. ``out.extras``) from the representations, before the fused head."""

    def fusion_inputs(self, out: SelfMMOutput) -> list[torch.Tensor]:
        """What the fused head concatenates: Self-MM's [u_t; u_a; u_v]."""
        return [out.representations[m] for m in self.modalities]

    # --- parameters -----------------------------------------------------------------------------
    @property
    def text_encoder(self) -> nn.Module:
        return self.encoders.text_encoder

    def stream_parameters(self, m: str) -> list[nn.Parameter]:
        """Self-MM's audio/video "subnet": the stream encoder and its output Linear."""
        params = list(self.encoders.streams[m].parameters())
        if m in self.subnet_out:
            params += list(self.subnet_out[m].parameters())
        return params

    # --- forward --------------------------------------------------------------------------------
    def forward(self, batch: "Batch", heads: tuple[str, ...] | None = None) -> SelfMMOutput:
        """All heads, or the fused head plus the unimodal `heads` (``()`` = the fused head only)."""
        enc = self.encoders(batch)
        reps = {"t": enc.pooled["t"]}
        for m in self.encoders.stream_names:
            reps[m] = self.subnet_out[m](enc.pooled[m]) if m in self.subnet_out else enc.pooled[m]
        out = SelfMMOutput(representations=reps)
        self.extend(out)
        out.prediction, out.features[FUSED] = self.heads[FUSED](torch.cat(self.fusion_inputs(out), dim=-1))
        for m in (self.modalities if heads is None else heads):
            out.predictions[m], out.features[m] = self.heads[m](reps[m])
        return out


def weighted_l1(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """mean(w · |ŷ − y|) (Self-MM's ``weighted_loss``)."""
    return torch.mean(weight * torch.abs(pred.float() - target.float()))


class SelfMMRuntime(MethodRuntime):
    """Four heads, the ULGM label bank (indexed by ``batch.index``), fused-head prediction."""

    def __init__(self, cfg: "RunConfig", model: SelfMMModel, data: "MSADataset | None",
                 device: torch.device | str = "cpu") -> None:
        super().__init__(cfg, model, data)
        p = cfg.method_params
        self.accumulation_steps = int(p.update_epochs)
        self.active = tuple(cfg.method_spec.active_terms(cfg))
        # heads whose term is computed: only they run, and only they get generated labels
        self.label_modalities = tuple(m for m in UNIMODAL if f"uni_{m}" in self.active)
        self.bank: LabelBank | None = None
        if self.label_modalities:
            if data is None:
                raise ValueError("Self-MM needs the training split (its labels seed the label bank)")
            labels = torch.tensor(np.array(data.splits["train"].labels), dtype=torch.float32, device=device)
            widths = bank_widths(cfg)
            self.bank = LabelBank(labels, {k: widths[k] for k in (FUSED, *self.label_modalities)},
                                  clip=p.label_clip, exclude_zero=p.exclude_zero, eps=p.eps)
        self.epoch = 1
        self._pending: tuple[torch.Tensor, dict[str, torch.Tensor]] | None = None

    # --- the loop's questions -------------------------------------------------------------------
    def on_epoch_start(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def training_terms(self, batch: "Batch", epoch: int) -> dict[str, torch.Tensor]:
        self.epoch = int(epoch)
        out = self.model(batch, heads=self.label_modalities)
        with full_precision(batch.labels.device):
            terms = {"task": weighted_l1(out.prediction, batch.labels, torch.ones_like(batch.labels))}
            for m in self.label_modalities:
                index = batch.index.to(self.bank.labels[m].device)
                y_s = self.bank.labels[m][index].to(batch.labels.device)
                w_s = self.bank.weights(m, index).to(batch.labels.device)
                terms[f"uni_{m}"] = weighted_l1(out.predictions[m], y_s, w_s)
            terms.update(self.extra_terms(out, batch))
        if self.bank is not None:
            self._pending = (batch.index, {k: out.features[k].detach().float() for k in self.bank.keys})
        return terms

    def extra_terms(self, out: SelfMMOutput, batch: "Batch") -> dict[str, torch.Tensor]:
        """Terms an extension adds (fp32 context; compute only the active ones)."""
        return {}

    def after_backward(self, batch: "Batch") -> None:
        """Self-MM's order: update the batch's labels (old centres), write features, new centres."""
        if self._pending is None:
            return
        index, features = self._pending
        self._pending = None
        if index.shape != batch.index.shape or not torch.equal(index, batch.index):
            raise RuntimeError("Self-MM: after_backward got another batch than the last training_terms")
        self.bank.step(features, index, self.epoch)

    def predict(self, batch: "Batch") -> torch.Tensor:
        return self.model(batch, heads=()).prediction

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Self-MM's five Adam groups; the rest (heads, extensions) last, at ``lr_other``."""
        p, cfg, model = self.cfg.method_params, self.cfg, self.model
        named = list(model.text_encoder.named_parameters())
        decay = [w for n, w in named if not any(nd in n for nd in BERT_NO_DECAY)]
        no_decay = [w for n, w in named if any(nd in n for nd in BERT_NO_DECAY)]
        groups = [{"params": decay, "lr": cfg.lr_text, "weight_decay": p.weight_decay_text, "name": "text_encoder"},
                  {"params": no_decay, "lr": cfg.lr_text, "weight_decay": 0.0, "name": "text_encoder_no_decay"}]
        stream = {"a": (p.lr_audio, p.weight_decay_audio), "v": (p.lr_video, p.weight_decay_video)}
        for m in model.encoders.stream_names:
            groups.append({"params": model.stream_parameters(m), "lr": stream[m][0],
                           "weight_decay": stream[m][1], "name": f"stream_{m}"})
        taken = {id(w) for g in groups for w in g["params"]}
        rest = [w for w in model.parameters() if id(w) not in taken]
        groups.append({"params": rest, "lr": cfg.lr_other, "weight_decay": cfg.weight_decay, "name": "rest"})
        return [g for g in groups if g["params"]]

    def state_dict(self) -> dict[str, Any]:
        return {} if self.bank is None else {"label_bank": self.bank.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.bank is None:
            if state:
                raise ValueError(f"method {self.cfg.method!r} computes no unimodal term here, so keeps no "
                                 f"label bank, but the checkpoint has {sorted(state)}")
            return
        if "label_bank" not in state:
            raise ValueError(f"method {self.cfg.method!r}: the checkpoint has no label bank "
                             f"(keys {sorted(state)}); it cannot resume bit-exactly")
        self.bank.load_state_dict(state["label_bank"])


def build_model(cfg: "RunConfig", data: "MSADataset", model_class: type[SelfMMModel] = SelfMMModel) -> SelfMMModel:
    return model_class(cfg, audio_dim=data.audio_dim, vision_dim=data.vision_dim)


def build(cfg: "RunConfig", data: "MSADataset", device: torch.device) -> SelfMMRuntime:
    return SelfMMRuntime(cfg, build_model(cfg, data).to(device), data, device)
