"""HyCon's torch side: shared encoders, per-modality projections, a concatenation fusion, the terms.

    SharedEncoders                        u_t, u_a, u_v = [CLS] states (N, d_m)
    projections g_m (ProjectionHead)      z_m = normalise(g_m(u_m))  (N, proj_dim)
    fusion (reconstruction, not HyCon's)  h = ReLU(Linear(Dropout([u_t; u_a; u_v])))  (N, fusion_dim)
    head                                  ŷ = regression_head(h)  (N,)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from mmsa_core import losses as core_losses
from mmsa_core.methods.hycon import losses as hycon_losses
from mmsa_core.methods.runtime import MethodRuntime, full_precision
from mmsa_core.models.blocks import ProjectionHead, SharedEncoders, regression_head

if TYPE_CHECKING:
    from mmsa_core.config import RunConfig
    from mmsa_core.data import MSADataset
    from mmsa_core.data.batching import Batch


@dataclass
class HyConOutput:
    prediction: torch.Tensor  # (N,)
    z: dict[str, torch.Tensor] = field(default_factory=dict)  # modality -> (N, proj_dim), unit rows


class HyConModel(nn.Module):
    """Shared encoders + g_m per modality of `cfg.modalities` + concatenation fusion + head."""

    def __init__(self, cfg: "RunConfig", *, audio_dim: int, vision_dim: int):
        super().__init__()
        p = cfg.method_params
        self.modalities = tuple(cfg.modalities)  # "t", then "a" / "v" in that order
        self.encoders = SharedEncoders(cfg, audio_dim=audio_dim, vision_dim=vision_dim)
        widths = self.encoders.widths
        self.proj = nn.ModuleDict({m: ProjectionHead(widths[m], cfg.proj_dim, cfg.dropout, relu=False)
                                   for m in self.modalities})
        self.fusion = nn.Sequential(nn.Dropout(cfg.dropout),
                                    nn.Linear(sum(widths[m] for m in self.modalities), p.fusion_dim),
                                    nn.ReLU())
        self.head = regression_head(p.fusion_dim, cfg.dropout)

    @property
    def text_encoder(self) -> nn.Module:  # the runtime's parameter groups read it
        return self.encoders.text_encoder

    def forward(self, batch: "Batch", project: bool = True) -> HyConOutput:
        enc = self.encoders(batch)
        u = [enc.pooled[m] for m in self.modalities]
        prediction = self.head(self.fusion(torch.cat(u, dim=-1))).squeeze(-1)
        z = {m: F.normalize(self.proj[m](enc.pooled[m]).float(), dim=-1) for m in self.modalities} \
            if project else {}
        return HyConOutput(prediction=prediction, z=z)


def compute_terms(cfg: "RunConfig", out: HyConOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Unweighted value of every active HyCon term (scalars); inactive terms are not computed."""
    p = cfg.method_params
    active = set(cfg.method_spec.active_terms(cfg))
    terms: dict[str, torch.Tensor] = {"task": core_losses.l1_loss(out.prediction.float(), labels)}
    if active == {"task"}:
        return terms
    zs = [out.z[m] for m in cfg.modalities]
    classes = core_losses.class_labels(labels, p.class_rule)
    beta = p.hard_beta if p.hard_negatives else None
    if "intra" in active:
        terms["intra"] = hycon_losses.intra_loss(zs, classes, p.tau, beta=beta)
    if "inter" in active:
        terms["inter"] = hycon_losses.inter_loss(zs, classes, p.tau, pairing=p.inter_pairing, beta=beta)
    if "semi" in active:
        terms["semi"] = hycon_losses.semi_loss(zs, p.margin)
    if "refine" in active:
        terms["refine"] = hycon_losses.refine_loss(zs, classes, target_intra=p.refine_target_intra,
                                                   target_inter=p.inter_target())
    return terms


class HyConRuntime(MethodRuntime):
    """One forward pass per step; the projections only when a contrastive term is active."""

    def training_terms(self, batch: "Batch", epoch: int) -> dict[str, torch.Tensor]:
        project = len(self.cfg.method_spec.active_terms(self.cfg)) > 1
        out = self.model(batch, project=project)
        with full_precision(batch.labels.device):
            return compute_terms(self.cfg, out, batch.labels)

    def predict(self, batch: "Batch") -> torch.Tensor:
        return self.model(batch, project=False).prediction


def build(cfg: "RunConfig", data: "MSADataset", device: torch.device) -> HyConRuntime:
    model = HyConModel(cfg, audio_dim=data.audio_dim, vision_dim=data.vision_dim).to(device)
    return HyConRuntime(cfg, model, data)
