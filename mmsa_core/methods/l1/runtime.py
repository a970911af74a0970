"""L1 baseline's torch side: HSCL's model (its projections unused), the task term only."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from mmsa_core import losses
from mmsa_core.methods.hscl.runtime import HSCLModel, float_output
from mmsa_core.methods.runtime import MethodRuntime

if TYPE_CHECKING:
    from mmsa_core.config import RunConfig
    from mmsa_core.data import MSADataset
    from mmsa_core.data.batching import Batch


class L1Runtime(MethodRuntime):
    def training_terms(self, batch: "Batch", epoch: int) -> dict[str, torch.Tensor]:
        out = float_output(self.model.forward_batch(batch))
        return {"task": losses.l1_loss(out.prediction, batch.labels)}

    def predict(self, batch: "Batch") -> torch.Tensor:
        return self.model.forward_batch(batch).prediction


def build(cfg: "RunConfig", data: "MSADataset", device: torch.device) -> L1Runtime:
    model = HSCLModel(cfg, audio_dim=data.audio_dim, vision_dim=data.vision_dim, faithful=False).to(device)
    return L1Runtime(cfg, model, data)
