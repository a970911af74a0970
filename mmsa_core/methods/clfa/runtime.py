"""CLFA's torch side (see the package docstring for the method and its reconstructions).

    shared encoders                  E_t (N, L_t, d_t), E_a (N, 1+L_a, d_a), E_v (N, 1+L_v, d_v)
    pooling (masked mean | [CLS])    u_m (N, d_m)
    projection MLPs P_m              P_m(u_m) (N, W)              (normalised inside the loss)
    reference map P_ref              P_ref(e_ref[index]) (N, W)   e_ref: frozen, precomputed, cached
    head                             ŷ = regression_head([u_t; u_a; u_v])  (N,)

The reference embeddings of the train split are computed once when the runtime is built (or read
from the on-disk cache, `mmsa_core.methods.clfa.reference`) and kept as an (N_train, D_ref) tensor
on the device, read by `batch.index`; the reference encoder itself is dropped once they exist, so it
is never part of the model, its state dict or the optimiser. Evaluation predicts with the task head
and needs no reference.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from mmsa_core import losses
from mmsa_core.methods.clfa import MODALITIES
from mmsa_core.methods.clfa.losses import symmetric_infonce
from mmsa_core.methods.clfa.reference import reference_embeddings, reference_width
from mmsa_core.methods.runtime import MethodRuntime, full_precision
from mmsa_core.models.blocks import Encoded, SharedEncoders, regression_head
from mmsa_core.models.text_encoder import resolve_text_encoder

if TYPE_CHECKING:
    from mmsa_core.config import RunConfig
    from mmsa_core.data import MSADataset
    from mmsa_core.data.batching import Batch


class AlignmentMLP(nn.Sequential):
    """P_m: Dropout -> Linear(d -> h) -> ReLU -> Linear(h -> W) (the authors': 768 -> 1536 -> 512)."""

    def __init__(self, width: int, hidden: int, out: int, dropout: float):
        super().__init__(nn.Dropout(dropout), nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, out))


def orthogonal_matrix(d_in: int, d_out: int, seed: int) -> torch.Tensor:
    """(d_in, d_out) random matrix with orthonormal rows (d_in ≤ d_out: x ↦ xM is an isometry) or
    orthonormal columns (d_in > d_out: an orthogonal projection), from its own generator (`seed`),
    so drawing it never moves the global RNG."""
    g = torch.Generator().manual_seed(int(seed))
    a = torch.randn(max(d_in, d_out), min(d_in, d_out), generator=g, dtype=torch.float64)
    q, r = torch.linalg.qr(a)  # (max, min), orthonormal columns
    q = q * torch.sign(torch.diagonal(r)).masked_fill(torch.diagonal(r) == 0, 1.0)  # unique Q
    return (q if d_in >= d_out else q.T).float().contiguous()


class ReferenceMap(nn.Module):
    """P_ref: the reference embedding (D_ref) to the common width W — frozen or trainable."""

    def __init__(self, kind: str, d_ref: int, width: int, *, hidden: int, dropout: float, seed: int):
        super().__init__()
        self.kind = kind
        if kind == "orthogonal":
            self.register_buffer("matrix", orthogonal_matrix(d_ref, width, seed))  # frozen: not a parameter
        elif kind == "linear":
            self.net = nn.Linear(d_ref, width)
        elif kind == "mlp":
            self.net = AlignmentMLP(d_ref, hidden, width, dropout)
        else:
            raise ValueError(f"clfa.reference_map={kind!r} must be one of ['orthogonal', 'linear', 'mlp']")

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return e @ self.matrix if self.kind == "orthogonal" else self.net(e)


@dataclass
class CLFAOutput:
    prediction: torch.Tensor  # (N,)
    pooled: dict[str, torch.Tensor] = field(default_factory=dict)  # m -> u_m (N, d_m)
    projections: dict[str, torch.Tensor] = field(default_factory=dict)  # m -> P_m(u_m) (N, W), asked ones


class CLFAModel(nn.Module):
    """Shared encoders, a P_m per modality, P_ref, and the regression head (built in that order)."""

    def __init__(self, cfg: "RunConfig", *, audio_dim: int, vision_dim: int, reference_dim: int):
        super().__init__()
        p = cfg.method_params
        self.encoders = SharedEncoders(cfg, audio_dim=audio_dim, vision_dim=vision_dim)
        self.modalities = tuple(m for m in MODALITIES if m in cfg.modalities)
        self.pooling = p.pooling
        self.head_input = p.head_input
        widths = self.encoders.widths
        self.proj = nn.ModuleDict({m: AlignmentMLP(widths[m], p.mlp_hidden or 2 * widths[m], p.width, cfg.dropout)
                                   for m in self.modalities})
        self.reference_map = ReferenceMap(p.reference_map, reference_dim, p.width,
                                          hidden=p.mlp_hidden or 2 * reference_dim, dropout=cfg.dropout,
                                          seed=cfg.seed)
        head_width = (p.width * len(self.modalities) if p.head_input == "projected"
                      else sum(widths[m] for m in self.modalities))
        self.head = regression_head(head_width, cfg.dropout)

    @property
    def text_encoder(self) -> nn.Module:
        """The pretrained text encoder (its own optimiser group, at ``lr_text``)."""
        return self.encoders.text_encoder

    def pool(self, enc: Encoded) -> dict[str, torch.Tensor]:
        """u_m per modality: masked mean over valid positions, or the [CLS] state."""
        if self.pooling == "cls":
            return {m: enc.pooled[m] for m in self.modalities}
        states = {"t": (enc.tokens, enc.text_pad), **enc.streams}
        out = {}
        for m in self.modalities:
            e, pad = states[m]  # (N, L, d), (N, L) True = padding
            valid = (~pad).unsqueeze(-1).to(e.dtype)  # (N, L, 1)
            out[m] = (e * valid).sum(1) / valid.sum(1).clamp_min(1.0)
        return out

    def forward(self, batch: "Batch", project: Iterable[str] = ()) -> CLFAOutput:
        """Prediction, pooled states, and the projections of the modalities in `project` only."""
        pooled = self.pool(self.encoders(batch))
        wanted = set(project) | (set(self.modalities) if self.head_input == "projected" else set())
        projections = {m: self.proj[m](pooled[m]) for m in self.modalities if m in wanted}
        source = projections if self.head_input == "projected" else pooled
        features = torch.cat([source[m] for m in self.modalities], dim=-1)
        return CLFAOutput(prediction=self.head(features).squeeze(-1), pooled=pooled, projections=projections)


class CLFARuntime(MethodRuntime):
    """One forward pass; the task term and one alignment term per active modality."""

    def __init__(self, cfg: "RunConfig", model: CLFAModel, data: "MSADataset | None" = None,
                 references: torch.Tensor | None = None) -> None:
        super().__init__(cfg, model, data)
        active = cfg.method_spec.active_terms(cfg)
        self.align = tuple(m for m in model.modalities if f"align_{m}" in active)
        if self.align and references is None:
            raise ValueError(f"clfa: alignment terms {[f'align_{m}' for m in self.align]} are active but no "
                             "reference embeddings were given")
        self.references = references  # (N_train, D_ref) float32, frozen (no grad), on the model's device

    def training_terms(self, batch: "Batch", epoch: int) -> dict[str, torch.Tensor]:
        out = self.model(batch, project=self.align)
        with full_precision(batch.labels.device):
            terms = {"task": losses.l1_loss(out.prediction.float(), batch.labels)}
            if self.align:
                ref = self.model.reference_map(self.references[batch.index].float())  # (N, W)
                for m in self.align:
                    terms[f"align_{m}"] = symmetric_infonce(out.projections[m].float(), ref,
                                                            self.cfg.method_params.tau)
        return terms

    def predict(self, batch: "Batch") -> torch.Tensor:
        return self.model(batch).prediction


def build(cfg: "RunConfig", data: "MSADataset", device: torch.device) -> CLFARuntime:
    p = cfg.method_params
    spec = resolve_text_encoder(p.reference_encoder)
    model = CLFAModel(cfg, audio_dim=data.audio_dim, vision_dim=data.vision_dim,
                      reference_dim=reference_width(spec)).to(device)
    references = None
    if any(t.startswith("align_") for t in cfg.method_spec.active_terms(cfg)):
        train = data.splits["train"]
        emb = reference_embeddings(train.raw_text, spec, max_len=p.reference_max_len, device=device)
        if emb.shape[0] != len(train):
            raise ValueError(f"clfa: {emb.shape[0]} reference embeddings for {len(train)} train samples")
        references = torch.from_numpy(emb).to(device)
    return CLFARuntime(cfg, model, data, references)
