"""Torch side of the toy method: shared encoders, mean of the pooled states, a regression head."""

from __future__ import annotations

import torch

from mmsa_core import losses
from mmsa_core.methods.runtime import MethodRuntime
from mmsa_core.models.blocks import SharedEncoders, regression_head


class ToyModel(torch.nn.Module):
    def __init__(self, cfg, data):
        super().__init__()
        self.encoders = SharedEncoders(cfg, audio_dim=data.audio_dim, vision_dim=data.vision_dim)
        self.text_encoder = self.encoders.text_encoder  # the default parameter groups look for it
        widths = self.encoders.widths
        self.proj = torch.nn.ModuleDict({m: torch.nn.Linear(widths[m], 32) for m in cfg.modalities})
        self.head = regression_head(32, cfg.dropout, hidden=32)
        self.pool = cfg.params.pool

    def forward(self, batch):
        enc = self.encoders(batch)
        if self.pool == "mean":
            keep = (~enc.text_pad).unsqueeze(-1).to(enc.tokens.dtype)
            enc.pooled["t"] = (enc.tokens * keep).sum(1) / keep.sum(1).clamp(min=1)
        fused = torch.stack([self.proj[m](enc.pooled[m]) for m in self.proj]).mean(0)  # (N, 32)
        return fused, self.head(fused).squeeze(-1)


class ToyRuntime(MethodRuntime):
    def training_terms(self, batch, epoch):
        fused, pred = self.model(batch)
        terms = {"task": losses.l1_loss(pred, batch.labels)}
        if "spread" in self.cfg.active_losses:
            terms["spread"] = (fused.var(0).mean() - self.cfg.params.target).pow(2)
        return terms

    def predict(self, batch):
        return self.model(batch)[1]


def build(cfg, data, device):
    return ToyRuntime(cfg, ToyModel(cfg, data).to(device), data)
