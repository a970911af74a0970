"""The torch side of a method: its model and the hooks the one training loop calls.

`mmsa_core.trainer.train` owns the loop (epochs, optimiser, clipping, selection, checkpoints) and
asks the method, through a `MethodRuntime`, only what differs between methods:

- `training_terms(batch, epoch)`: the unweighted loss terms of one step — as many forward passes
  as the method needs (MM-CKD's masked students), with per-sample state read by `batch.index`;
- `after_backward(batch)`: per-step state updates once gradients exist (Self-MM's label update);
- `on_epoch_start(epoch)` / `on_epoch_end(epoch)`: per-epoch state (Self-MM's momentum, banks);
- `predict(batch)`: which head predicts at evaluation;
- `parameter_groups()`: optimiser groups (default: the pretrained text encoder, and the rest);
- `state_dict()` / `load_state_dict()`: method state that a checkpoint must carry so that a
  resumed run continues bit-exactly (model weights are saved by the trainer);
- `accumulation_steps`: batches per optimiser step (Self-MM's ``update_epochs``); the step's
  gradient is the sum over those batches (not the mean), so that Adam's coupled weight decay and the
  clipping bound see what one step on the summed loss would;
- `trim_padding`: whether the trainer may cut all-padding columns of a batch (pure speed).

A method's ``runtime`` module exposes ``build(cfg, data, device) -> MethodRuntime``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from mmsa_core.config import RunConfig
    from mmsa_core.data import MSADataset
    from mmsa_core.data.batching import Batch


class MethodRuntime:
    """Base runtime: one forward pass per step, the model's ``prediction`` at evaluation."""

    accumulation_steps: int = 1
    trim_padding: bool = True

    def __init__(self, cfg: "RunConfig", model: nn.Module, data: "MSADataset | None" = None) -> None:
        self.cfg = cfg
        self.model = model
        self.data = data

    # --- the loop's questions ---------------------------------------------------------------------
    def training_terms(self, batch: "Batch", epoch: int) -> dict[str, torch.Tensor]:
        """Unweighted value of every active loss term for one training batch (scalars)."""
        raise NotImplementedError

    def after_backward(self, batch: "Batch") -> None:
        """Called after each backward pass (before the optimiser step)."""

    def on_epoch_start(self, epoch: int) -> None:
        """Called before the first batch of `epoch` (1-based)."""

    def on_epoch_end(self, epoch: int) -> None:
        """Called after the last batch of `epoch`, before evaluation."""

    def predict(self, batch: "Batch") -> torch.Tensor:
        """(N,) predicted scores for an evaluation batch (the model is in eval mode)."""
        return self.model(batch).prediction

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Adam groups: the pretrained text encoder at ``lr_text``, everything else at ``lr_other``."""
        text = list(self.model.text_encoder.parameters())
        ids = {id(p) for p in text}
        rest = [p for p in self.model.parameters() if id(p) not in ids]
        return [{"params": text, "lr": self.cfg.lr_text, "name": "text_encoder"},
                {"params": rest, "lr": self.cfg.lr_other, "name": "rest"}]

    def state_dict(self) -> dict[str, Any]:
        """Method state beyond the model's weights (empty for stateless methods)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            raise ValueError(f"method {self.cfg.method!r} keeps no state, but the checkpoint has "
                             f"{sorted(state)}")

    # --- helpers ----------------------------------------------------------------------------------
    def weights(self) -> dict[str, float]:
        return self.cfg.method_spec.loss_weights(self.cfg)

    def total_loss(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        weights = self.weights()
        return sum(weights[name] * value for name, value in terms.items())


def full_precision(device: torch.device):
    """Autocast off: losses are computed in fp32 whatever the forward pass ran in."""
    return torch.autocast(device.type, enabled=False)


def build_runtime(cfg: "RunConfig", data: "MSADataset", device: torch.device | str = "cpu") -> MethodRuntime:
    """The runtime of `cfg.method` for `data`, with its model on `device`."""
    import importlib

    module = importlib.import_module(cfg.method_spec.runtime)
    runtime = module.build(cfg, data, torch.device(device))
    if not isinstance(runtime, MethodRuntime):
        raise TypeError(f"{cfg.method_spec.runtime}.build returned {type(runtime).__name__}, not a MethodRuntime")
    return runtime
