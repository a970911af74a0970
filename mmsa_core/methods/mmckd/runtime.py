"""MM-CKD's torch side: the core (teacher / students), the students' masking and the loss terms.

    core(batch):  SharedEncoders -> fusion -> h (N, d_t) -> regression_head -> ŷ (N,)
    teacher       core_0 on the complete batch
    student k     core_{k+1} (= core_0 with shared weights) on mask_k(batch), a fresh mask per step
    views         P(h_teacher), P(h_student_1), ..., P(h_student_K)  (one projection head P)

Every forward pass happens in `MMCKDRuntime.training_terms`; the masks come from
`mmsa_core.data.masking_torch` with the runtime's own generator (seeded from the run's seed, saved
in `state_dict()` so that a resumed run draws the same masks as an uninterrupted one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from mmsa_core import losses
from mmsa_core.data.masking import tokenizer_unk_id
from mmsa_core.data.masking_torch import drop_batch_modalities, mask_batch
from mmsa_core.methods.mmckd import masked_modalities
from mmsa_core.methods.mmckd.losses import mvsc_loss, stack_views
from mmsa_core.methods.runtime import MethodRuntime, full_precision
from mmsa_core.models.blocks import (
    FusionBlock,
    ProjectionHead,
    SharedEncoders,
    check_widths,
    regression_head,
)

if TYPE_CHECKING:
    from mmsa_core.config import RunConfig
    from mmsa_core.data import MSADataset
    from mmsa_core.data.batching import Batch

_MASK_STREAM = 0x4D4B  # keeps the mask generator's stream apart from torch's global one


def mask_seed(seed: int) -> int:
    """The students' mask generator's seed, derived from the run's seed."""
    return (int(seed) * 1_000_003 + _MASK_STREAM) % (2**63)


@dataclass
class CKDOutput:
    prediction: torch.Tensor  # (N,)
    fused: torch.Tensor  # h (N, d_t)


class CKDCore(nn.Module):
    """One copy of the core: shared encoders, a fusion to h (text width), the regression head."""

    def __init__(self, cfg: "RunConfig", *, audio_dim: int, vision_dim: int):
        super().__init__()
        self.fusion_kind = cfg.method_params.fusion
        self.encoders = SharedEncoders(cfg, audio_dim=audio_dim, vision_dim=vision_dim)
        d_t = self.encoders.text_dim
        self.width = d_t
        streams = self.encoders.stream_names
        if self.fusion_kind == "attention":
            check_widths(cfg, text_dim=d_t, audio_dim=audio_dim, vision_dim=vision_dim, fusion=bool(streams))
            self.fusion = nn.ModuleDict({m: FusionBlock(d_t, self.encoders.widths[m], cfg.fusion_heads,
                                                        cfg.dropout, faithful=False,
                                                        ffn_mult=cfg.fusion_ffn_mult) for m in streams})
        else:  # "concat"
            width = d_t + sum(self.encoders.widths[m] for m in streams)
            self.fusion = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(width, d_t), nn.Tanh())
        self.head = regression_head(d_t, cfg.dropout)

    @property
    def text_encoder(self) -> nn.Module:
        return self.encoders.text_encoder

    def forward(self, batch: "Batch") -> CKDOutput:
        enc = self.encoders(batch)
        if self.fusion_kind == "attention":
            fused = [self.fusion[m].first_row(enc.tokens, enc.text_pad, *enc.streams[m]) for m in enc.streams]
            h = torch.stack(fused).mean(0) if fused else enc.pooled["t"]  # (N, d_t)
        else:
            h = self.fusion(torch.cat([enc.pooled[m] for m in ("t", *enc.streams)], dim=-1))
        return CKDOutput(prediction=self.head(h).squeeze(-1), fused=h)


class MMCKDModel(nn.Module):
    """One core shared by teacher and students, or K + 1 separate cores; one projection head."""

    def __init__(self, cfg: "RunConfig", *, audio_dim: int, vision_dim: int):
        super().__init__()
        p = cfg.method_params
        self.students = int(p.students)
        copies = 1 if p.shared_weights else self.students + 1
        self.cores = nn.ModuleList([CKDCore(cfg, audio_dim=audio_dim, vision_dim=vision_dim)
                                    for _ in range(copies)])
        self.proj = ProjectionHead(self.cores[0].width, cfg.proj_dim, cfg.dropout, relu=False)

    @property
    def shared(self) -> bool:
        return len(self.cores) == 1

    @property
    def teacher(self) -> CKDCore:
        return self.cores[0]

    def student(self, k: int) -> CKDCore:
        """Student k (0-based): the teacher's core with shared weights, else its own copy."""
        if not 0 <= k < self.students:
            raise IndexError(f"student {k} of {self.students}")
        return self.cores[0] if self.shared else self.cores[k + 1]

    def text_parameters(self) -> list[nn.Parameter]:
        return [q for core in self.cores for q in core.text_encoder.parameters()]

    def forward(self, batch: "Batch") -> CKDOutput:
        """The teacher's pass (what `model(batch).prediction` means)."""
        return self.teacher(batch)


class MMCKDRuntime(MethodRuntime):
    """Teacher on the complete batch, K students on fresh masked copies, MM-CKD's terms."""

    def __init__(self, cfg: "RunConfig", model: MMCKDModel, data: "MSADataset | None" = None, *,
                 device: torch.device | str = "cpu", unk_id: int | None = None) -> None:
        super().__init__(cfg, model, data)
        self.params = cfg.method_params
        self.masked = masked_modalities(cfg)
        self.unk_id = tokenizer_unk_id(cfg.text_encoder) if unk_id is None else int(unk_id)
        self.generator = torch.Generator(device=torch.device(device))
        self.generator.manual_seed(mask_seed(cfg.seed))

    # --- the students' inputs ---------------------------------------------------------------------
    def mask(self, batch: "Batch") -> "Batch":
        """One student's masked copy of `batch` (a fresh draw from the runtime's generator)."""
        p = self.params
        if p.mask == "modality":
            return drop_batch_modalities(batch, self.masked, rate=p.rate, generator=self.generator)
        return mask_batch(batch, p.rate, generator=self.generator, unk_id=self.unk_id, modalities=self.masked)

    def student_batches(self, batch: "Batch") -> list["Batch"]:
        return [self.mask(batch) for _ in range(self.model.students)]

    # --- the loop's questions -----------------------------------------------------------------------
    def training_terms(self, batch: "Batch", epoch: int) -> dict[str, torch.Tensor]:
        cfg, p, model = self.cfg, self.params, self.model
        active = set(cfg.method_spec.active_terms(cfg))
        teacher = model.teacher(batch)
        students = []
        if active & {"student_task", "mvsc"}:  # no students' passes when neither term is computed
            students = [model.student(k)(b) for k, b in enumerate(self.student_batches(batch))]
        labels = batch.labels
        with full_precision(labels.device):
            terms = {"task": losses.l1_loss(teacher.prediction.float(), labels)}
            if "student_task" in active:
                per = torch.stack([losses.l1_loss(s.prediction.float(), labels) for s in students])
                terms["student_task"] = per.sum() if p.student_reduction == "sum" else per.mean()
            if "mvsc" in active:
                h_teacher = teacher.fused.float()
                if p.stop_grad:
                    h_teacher = h_teacher.detach()
                views = [model.proj(h_teacher)] + [model.proj(s.fused.float()) for s in students]
                terms["mvsc"] = mvsc_loss(stack_views(views), labels, kind=p.contrast, tau=p.tau,
                                          class_rule=p.class_rule)
        return terms

    def predict(self, batch: "Batch") -> torch.Tensor:
        core = self.model.student(0) if self.params.predict_with == "student" else self.model.teacher
        return core(batch).prediction

    def parameter_groups(self) -> list[dict[str, Any]]:
        text = self.model.text_parameters()
        ids = {id(q) for q in text}
        rest = [q for q in self.model.parameters() if id(q) not in ids]
        return [{"params": text, "lr": self.cfg.lr_text, "name": "text_encoder"},
                {"params": rest, "lr": self.cfg.lr_other, "name": "rest"}]

    def state_dict(self) -> dict[str, Any]:
        return {"mask_generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"mask_generator"}:
            raise ValueError(f"mmckd checkpoint state must hold exactly 'mask_generator', got {sorted(state)}")
        self.generator.set_state(state["mask_generator"].to("cpu", torch.uint8))


def build(cfg: "RunConfig", data: "MSADataset", device: torch.device) -> MMCKDRuntime:
    model = MMCKDModel(cfg, audio_dim=data.audio_dim, vision_dim=data.vision_dim).to(device)
    return MMCKDRuntime(cfg, model, data, device=device)
