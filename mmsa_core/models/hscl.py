"""HSCL — Hierarchical Supervised Contrastive Learning for multimodal sentiment analysis.

Chen, Wang, Hao, "Hierarchical Supervised Contrastive Learning for Multimodal Sentiment Analysis",
MMM 2024 (LNCS 14555, pp. 56–69); facts read from the paper and the authors' code are collected in
`shared/spec/hscl.md`. The whole forward pass is in this file, top to bottom:

    text encoder (HF BERT-family)        E_t (N, L_t, d_t), R_t = E_t[:, 0]
    acoustic / visual Transformers       E_m (N, 1+L_m, d_m), R_m = E_m[:, 0]   (learned [CLS])
    unimodal projections FC_m            R̂_t, R̂_a, R̂_v (N, P)
    fusion blocks (text queries stream)  R_mt (N, d_t) -> R̂_mt (N, P)
    head                                 ŷ = MLP(mean of the R_mt present)  (N,)

Losses are not computed here (`mmsa_core.objectives` does that from `HSCLOutput`).

`faithful=True` reproduces the authors' code quirks that live in the model (spec §7): (2) fresh
random [CLS] vectors every forward pass, (3) text self-attention without the padding mask,
(4) the cross-attention residual adds E_t instead of H_t, (5) ReLU at the end of every projection
head (positive orthant before normalisation). Quirks (1) and (6) are in the loss (`objectives`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from mmsa_core.config import RunConfig
from mmsa_core.models.text_encoder import build_text_encoder, resolve_text_encoder


@dataclass
class HSCLOutput:
    """What the losses need; nothing is stashed on the module."""

    prediction: torch.Tensor  # (N,) sentiment score
    projections: dict[str, torch.Tensor] = field(default_factory=dict)  # "t","a","v","at","vt" -> (N, P)
    representations: dict[str, torch.Tensor] = field(default_factory=dict)  # R_* (N, d_*) before projection


# ---------------------------------------------------------------------------------------------
# helpers


def sinusoidal_positions(length: int, width: int, device: torch.device) -> torch.Tensor:
    """(length, width) fixed sin/cos table (Vaswani et al.); odd widths drop the last cos column."""
    pos = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)  # (L, 1)
    freq = torch.exp(torch.arange(0, width, 2, device=device, dtype=torch.float32)
                     * (-math.log(10000.0) / width))  # (ceil(W/2),)
    table = torch.zeros(length, width, device=device)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : width // 2]
    return table


class ProjectionHead(nn.Sequential):
    """FC_m: Dropout -> Linear(d -> P) [-> ReLU in faithful mode, quirk 5]."""

    def __init__(self, width: int, proj_dim: int, dropout: float, relu: bool):
        layers: list[nn.Module] = [nn.Dropout(dropout), nn.Linear(width, proj_dim)]
        if relu:
            layers.append(nn.ReLU())
        super().__init__(*layers)


# ---------------------------------------------------------------------------------------------
# acoustic / visual encoder


class StreamEncoder(nn.Module):
    """Transformer over raw frames (width = feature width, no input projection) with a [CLS]."""

    def __init__(self, width: int, heads: int, ffn: int, layers: int, dropout: float, random_cls: bool):
        super().__init__()
        self.width = width
        self.random_cls = random_cls  # quirk 2: a fresh random [CLS] every forward pass
        self.cls = nn.Parameter(torch.randn(1, 1, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, heads, ffn, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, frames: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frames (N, L, d), valid (N, L) bool -> states E_m (N, 1+L, d), key padding mask (N, 1+L)."""
        n = frames.shape[0]
        cls = torch.randn(n, 1, self.width, device=frames.device) if self.random_cls \
            else self.cls.expand(n, 1, self.width)
        x = torch.cat([cls.to(frames.dtype), frames], dim=1) * math.sqrt(self.width)  # (N, 1+L, d)
        x = self.dropout(x + sinusoidal_positions(x.shape[1], self.width, x.device))
        pad = torch.cat([torch.zeros(n, 1, dtype=torch.bool, device=valid.device), ~valid], dim=1)
        return self.encoder(x, src_key_padding_mask=pad), pad  # (N, 1+L, d)


# ---------------------------------------------------------------------------------------------
# fusion block (spec §3)


class FusionBlock(nn.Module):
    """Text queries one stream: self-attn -> cross-attn (k = v = E_m, kdim = d_m) -> FFN."""

    def __init__(self, text_width: int, stream_width: int, heads: int, dropout: float, faithful: bool):
        super().__init__()
        self.faithful = faithful
        self.self_attn = nn.MultiheadAttention(text_width, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(text_width, heads, dropout=dropout, batch_first=True,
                                                kdim=stream_width, vdim=stream_width)
        self.ffn = nn.Sequential(nn.Linear(text_width, 4 * text_width), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(4 * text_width, text_width))
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(text_width) for _ in range(3))
        self.drop1, self.drop2, self.drop3 = (nn.Dropout(dropout) for _ in range(3))

    def forward(self, e_t: torch.Tensor, text_pad: torch.Tensor, e_m: torch.Tensor,
                stream_pad: torch.Tensor) -> torch.Tensor:
        """e_t (N, L_t, d_t), e_m (N, 1+L_m, d_m), pads True = padding -> Y_mt (N, L_t, d_t)."""
        self_mask = None if self.faithful else text_pad  # quirk 3: the code ignores text padding
        h_t = self.norm1(e_t + self.drop1(self.self_attn(e_t, e_t, e_t, key_padding_mask=self_mask,
                                                         need_weights=False)[0]))
        cross = self.cross_attn(h_t, e_m, e_m, key_padding_mask=stream_pad, need_weights=False)[0]
        residual = e_t if self.faithful else h_t  # quirk 4: the code adds the original text input
        f_mt = self.norm2(residual + self.drop2(cross))
        return self.norm3(f_mt + self.drop3(self.ffn(f_mt)))


# ---------------------------------------------------------------------------------------------
# the model


class HSCLModel(nn.Module):
    """HSCL over the modalities of `cfg.modalities`; widths of the streams come from the data."""

    def __init__(self, cfg: RunConfig, *, audio_dim: int, vision_dim: int):
        super().__init__()
        self.modalities = cfg.modalities
        self.text_encoder = build_text_encoder(resolve_text_encoder(cfg.text_encoder))
        d_t = int(self.text_encoder.config.hidden_size)
        check_widths(cfg, text_dim=d_t, audio_dim=audio_dim, vision_dim=vision_dim)
        relu = cfg.faithful
        self.proj = nn.ModuleDict({"t": ProjectionHead(d_t, cfg.proj_dim, cfg.dropout, relu)})
        self.streams = nn.ModuleDict()
        self.fusion = nn.ModuleDict()
        stream_shapes = {"a": (audio_dim, cfg.audio_heads, cfg.audio_ffn),
                         "v": (vision_dim, cfg.vision_heads, cfg.vision_ffn)}
        for m in self.stream_names:
            width, heads, ffn = stream_shapes[m]
            self.streams[m] = StreamEncoder(width, heads, ffn, cfg.av_layers, cfg.dropout,
                                            random_cls=cfg.faithful)
            self.proj[m] = ProjectionHead(width, cfg.proj_dim, cfg.dropout, relu)
            self.fusion[m] = FusionBlock(d_t, width, cfg.fusion_heads, cfg.dropout, cfg.faithful)
            self.proj[f"{m}t"] = ProjectionHead(d_t, cfg.proj_dim, cfg.dropout, relu)
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(d_t, 128), nn.Tanh(),
                                  nn.Linear(128, 128), nn.Tanh(), nn.Linear(128, 1))

    @property
    def stream_names(self) -> tuple[str, ...]:
        return tuple(m for m in ("a", "v") if m in self.modalities)

    def text_parameters(self) -> list[nn.Parameter]:
        return list(self.text_encoder.parameters())

    def other_parameters(self) -> list[nn.Parameter]:
        text = {id(p) for p in self.text_encoder.parameters()}
        return [p for p in self.parameters() if id(p) not in text]

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
            y_mt = self.fusion[m](e_t, text_pad, e_m, pad)  # (N, L_t, d_t)
            reps[f"{m}t"] = y_mt[:, 0]  # R_mt: fused state at the text [CLS]
            fused.append(reps[f"{m}t"])
        pooled = torch.stack(fused).mean(0) if fused else reps["t"]  # ½(R_at + R_vt) (N, d_t)
        prediction = self.head(pooled).squeeze(-1)  # (N,)
        projections = {k: self.proj[k](r) for k, r in reps.items()}
        return HSCLOutput(prediction=prediction, projections=projections, representations=reps)


def check_widths(cfg: RunConfig, *, text_dim: int, audio_dim: int, vision_dim: int) -> None:
    """Raise one ValueError naming every head count that does not divide its width."""
    problems = []
    if text_dim % cfg.fusion_heads:
        problems.append(f"fusion_heads={cfg.fusion_heads} does not divide the text width {text_dim} "
                        f"of encoder {cfg.text_encoder!r}")
    if "a" in cfg.modalities and audio_dim % cfg.audio_heads:
        problems.append(f"audio_heads={cfg.audio_heads} does not divide the acoustic width {audio_dim}")
    if "v" in cfg.modalities and vision_dim % cfg.vision_heads:
        problems.append(f"vision_heads={cfg.vision_heads} does not divide the visual width {vision_dim}")
    if problems:
        raise ValueError("model configuration does not fit the data: " + "; ".join(problems))
