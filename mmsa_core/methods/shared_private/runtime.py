"""Shared/private learning's torch side: Self-MM's model and runtime (imported, extended) plus the
shared projections s_m = P_m(u_m) and one covariance-alignment term per active pair."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from mmsa_core.methods.selfmm.runtime import (
    SelfMMModel,
    SelfMMOutput,
    SelfMMRuntime,
    build_model,
)
from mmsa_core.methods.shared_private import COV_TERMS
from mmsa_core.methods.shared_private.losses import coral_loss

if TYPE_CHECKING:
    from mmsa_core.config import RunConfig
    from mmsa_core.data import MSADataset
    from mmsa_core.data.batching import Batch


class SharedPrivateModel(SelfMMModel):
    """Self-MM's model; a Linear per modality to the common width d; s_m optionally fused."""

    def extra_fusion_width(self, cfg: "RunConfig") -> int:
        p = cfg.method_params
        self.shared_into_fusion = bool(p.shared_into_fusion)
        self.shared = nn.ModuleDict({m: nn.Linear(self.rep_widths[m], p.cov_dim) for m in self.modalities})
        # computed in forward when the fused head reads them, or when a cov term needs them
        self.compute_shared = self.shared_into_fusion
        return p.cov_dim * len(self.modalities) if self.shared_into_fusion else 0

    def extend(self, out: SelfMMOutput) -> None:
        if self.compute_shared:
            for m in self.modalities:
                out.extras[f"shared_{m}"] = self.shared[m](out.representations[m])

    def fusion_inputs(self, out: SelfMMOutput) -> list[torch.Tensor]:
        inputs = super().fusion_inputs(out)
        if self.shared_into_fusion:
            inputs += [out.extras[f"shared_{m}"] for m in self.modalities]
        return inputs


class SharedPrivateRuntime(SelfMMRuntime):
    """Self-MM's runtime plus ``cov_<pair>`` for every active pair (and only those)."""

    def __init__(self, cfg: "RunConfig", model: SharedPrivateModel, data: "MSADataset | None",
                 device: torch.device | str = "cpu") -> None:
        super().__init__(cfg, model, data, device)
        self.cov_pairs = tuple(t[len("cov_"):] for t in COV_TERMS if t in self.active)
        model.compute_shared = model.shared_into_fusion or bool(self.cov_pairs)

    def extra_terms(self, out: SelfMMOutput, batch: "Batch") -> dict[str, torch.Tensor]:
        terms = {}
        for m, n in self.cov_pairs:
            terms[f"cov_{m}{n}"] = coral_loss(out.extras[f"shared_{m}"].float(), out.extras[f"shared_{n}"].float())
        return terms


def build(cfg: "RunConfig", data: "MSADataset", device: torch.device) -> SharedPrivateRuntime:
    return SharedPrivateRuntime(cfg, build_model(cfg, data, SharedPrivateModel).to(device), data, device)
