"""HSCL's torch side: the model (docs/METHODS.md, HSCL §1-§4) and its loss terms (§2-§5).

    text encoder (HF BERT-family)        E_t (N, L_t, d_t), R_t = E_t[:, 0]
    acoustic / visual Transformers       E_m (N, 1+L_m, d_m), R_m = E_m[:, 0]   (learned [CLS])
    unimodal projections FC_m            R̂_t, R̂_a, R̂_v (N, P)
    fusion blocks (text queries stream)  R_mt (N, d_t) -> R̂_mt (N, P)
    head                                 ŷ = MLP(mean of the R_mt present)  (N,)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from mmsa_core import losses
from mmsa_core.methods.runtime import MethodRuntime, full_precision
from mmsa_core.models.blocks import (FusionBlock, ProjectionHead, StreamEncoder, check_widths,
                                     regression_head)
from mmsa_core.models.text_encoder import build_text_encoder, resolve_text_encoder

if TYPE_CHECKING:
    from mmsa_core.config import RunConfig
    from mmsa_core.data import MSADataset
    from mmsa_core.data.batching import Batch


@dataclass
class HSCLOutput:
    """What the losses need; nothing is stashed on the module."""

    prediction: torch.Tensor  # (N,) sentiment score
    projections: dict[str, torch.Tensor] = field(default_factory=dict)  # "t","a","v","at","vt" -> (N, P)
    representations: dict[str, torch.Tensor] = field(default_factory=dict)  # R_* (N, d_*) before projection


class HSCLModel(nn.Module):
    """HSCL over the modalities of `cfg.modalities`; widths of the streams come from the data.

    The blocks are built in the order of the recorded numbers (tests/core/test_golden_numbers.py):
    the order decides the initial weights drawn from a seed.
    """

    def __init__(self, cfg: "RunConfig", *, audio_dim: int, vision_dim: int, faithful: bool | None = None):
        super().__init__()
        faithful = bool(getattr(cfg.method_params, "faithful", False)) if faithful is None else faithful
        self.modalities = cfg.modalities
        self.text_encoder = build_text_encoder(resolve_text_encoder(cfg.text_encoder))
        d_t = int(self.text_encoder.config.hidden_size)
        check_widths(cfg, text_dim=d_t, audio_dim=audio_dim, vision_dim=vision_dim)
        relu = faithful  # quirk 5
        self.proj = nn.ModuleDict({"t": ProjectionHead(d_t, cfg.proj_dim, cfg.dropout, relu)})
        self.streams = nn.ModuleDict()
        self.fusion = nn.ModuleDict()
        stream_shapes = {"a": (audio_dim, cfg.audio_heads, cfg.audio_ffn),
                         "v": (vision_dim, cfg.vision_heads, cfg.vision_ffn)}
        for m in self.stream_names:
            width, heads, ffn = stream_shapes[m]
            self.streams[m] = StreamEncoder(width, heads, ffn, cfg.av_layers, cfg.dropout,
                                            random_cls=faithful)  # quirk 2
            self.proj[m] = ProjectionHead(width, cfg.proj_dim, cfg.dropout, relu)
            self.fusion[m] = FusionBlock(d_t, width, cfg.fusion_heads, cfg.dropout, faithful,  # quirks 3, 4
                                         ffn_mult=cfg.fusion_ffn_mult)
            self.proj[f"{m}t"] = ProjectionHead(d_t, cfg.proj_dim, cfg.dropout, relu)
        self.head = regression_head(d_t, cfg.dropout)

    @property
    def stream_names(self) -> tuple[str, ...]:
        return tuple(m for m in ("a", "v") if m in self.modalities)

    def text_parameters(self) -> list[nn.Parameter]:
        return list(self.text_encoder.parameters())

    def other_parameters(self) -> list[nn.Parameter]:
        text = {id(p) for p in self.text_encoder.parameters()}
        return [p for p in self.parameters() if id(p) not in text]

    def forward_batch(self, batch: "Batch") -> HSCLOutput:
        return self(batch.text_ids, batch.text_mask, batch.text_type, batch.audio, batch.audio_mask,
                    batch.vision, batch.vision_mask)

    def forward(self, text_ids: torch.Tensor, text_mask: torch.Tensor, text_type: torch.Tensor,
                audio: torch.Tensor | None = None, audio_valid: torch.Tensor | None = None,
                vision: torch.Tensor | None = None, vision_valid: torch.Tensor | None = None) -> HSCLOutput:
        e_t = self.text_encoder(input_ids=text_ids, attention_mask=text_mask,
                                token_type_ids=text_type).last_hidden_state  # (N, L_t, d_t)
        text_pad = text_mask == 0  # (N, L_t) True = padding
        reps = {"t": e_t[:, 0]}  # R_t: the [CLS] state
        fused: list[torch.Tensor] = []
        inputs = {"a": (audio, audio_valid), "v": (vision, vision_valid)}
        for m in self.stream_names:
            frames, valid = inputs[m]
            if frames is None or valid is None:
                raise ValueError(f"modality {m!r} is configured but no {m} frames were given")
            e_m, pad = self.streams[m](frames, valid)  # (N, 1+L_m, d_m)
            reps[m] = e_m[:, 0]  # R_m: output at [CLS]
            reps[f"{m}t"] = self.fusion[m].first_row(e_t, text_pad, e_m, pad)  # R_mt: Y_mt at the text [CLS]
            fused.append(reps[f"{m}t"])
        pooled = torch.stack(fused).mean(0) if fused else reps["t"]  # ½(R_at + R_vt) (N, d_t)
        prediction = self.head(pooled).squeeze(-1)  # (N,)
        projections = {k: self.proj[k](r) for k, r in reps.items()}
        return HSCLOutput(prediction=prediction, projections=projections, representations=reps)


def contrast(cfg: "RunConfig", views: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """SupCR over the views, or multi-view InfoNCE when label information is ablated away."""
    p = cfg.method_params
    tau = 0.5 if p.faithful else p.tau  # quirk 6: the authors hard-code τ = 0.5
    if p.label_info == "infonce":
        return losses.infonce_loss(views, tau)
    variant = "hscl_code" if p.faithful else "intended"  # quirk 1: the code's denominator
    return losses.supcr_loss(views, labels, tau, variant=variant)


def compute_terms(cfg: "RunConfig", out: HSCLOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Unweighted value of every active HSCL term (scalars), for logging and for the total."""
    active = set(cfg.method_spec.active_terms(cfg))
    terms: dict[str, torch.Tensor] = {"task": losses.l1_loss(out.prediction, labels)}
    for m in ("a", "v"):
        if f"supcr_t{m}" in active:
            views = torch.stack([out.projections["t"], out.projections[m]], dim=1)  # (N, 2, P)
            terms[f"supcr_t{m}"] = contrast(cfg, views, labels)
        if f"sim_t{m}" in active:
            terms[f"sim_t{m}"] = losses.similarity_loss(
                out.projections["t"], out.projections[m], squared=cfg.method_params.sim_norm == "squared_l2")
    if "supcr_fusion" in active:
        fused = [out.projections[k] for k in ("at", "vt") if k in out.projections]
        terms["supcr_fusion"] = contrast(cfg, torch.stack(fused, dim=1), labels)  # (N, V, P)
    return terms


def float_output(out: HSCLOutput) -> HSCLOutput:
    """Losses in fp32 whatever the autocast dtype of the forward pass."""
    out.prediction = out.prediction.float()
    out.projections = {k: v.float() for k, v in out.projections.items()}
    return out


class HSCLRuntime(MethodRuntime):
    """One forward pass, HSCL's terms; the faithful mode keeps padding columns (as the code does)."""

    def __init__(self, cfg: "RunConfig", model: HSCLModel, data: "MSADataset | None" = None) -> None:
        super().__init__(cfg, model, data)
        self.trim_padding = not getattr(cfg.method_params, "faithful", False)

    def training_terms(self, batch: "Batch", epoch: int) -> dict[str, torch.Tensor]:
        out = float_output(self.model.forward_batch(batch))
        with full_precision(batch.labels.device):
            return compute_terms(self.cfg, out, batch.labels)

    def predict(self, batch: "Batch") -> torch.Tensor:
        return self.model.forward_batch(batch).prediction


def build(cfg: "RunConfig", data: "MSADataset", device: torch.device) -> HSCLRuntime:
    model = HSCLModel(cfg, audio_dim=data.audio_dim, vision_dim=data.vision_dim).to(device)
    return HSCLRuntime(cfg, model, data)
