"""Self-MM's unimodal label-generation module (ULGM): the per-sample state of the training split.

Keys: ``"f"`` = the fused head (labels = the ground truth y_M, never updated), ``"t"``, ``"a"``,
``"v"`` = the unimodal heads (generated labels y_s). For every key the bank holds

    labels    (N,)      y_M for "f"; y_s for s (initialised to y_M)
    features  (N, w)    the head's first post-encoder ReLU output of each sample's last visit
                        (zeros before the first visit, as in Self-MM)
    centres   (w,) x 2  mean feature of the positive (y > 0; y >= 0 without exclude_zero) and the
                        negative (y < 0) samples, by the key's *current* labels

One training batch, after its backward pass (`LabelBank.step`, the order of Self-MM's code):

    1. from epoch 2: update the batch's y_s with the centres as they are (the previous batch's):
         δ_f = (d_n^f − d_p^f)/(d_p^f + ε),  δ_s likewise,  d = ‖h − c‖₂
         ŷ_s = ½ · (δ_s/(δ_f + ε)) · y_M + ½ · (y_M + δ_s − δ_f),  clamped to [−H, H]
         y_s ← (n−1)/(n+1) · y_s + 2/(n+1) · ŷ_s                      (n = the epoch, 1-based)
    2. write the batch's features into the bank;
    3. recompute every centre from the whole bank.

A class with no member keeps its previous centre (*reconstruction*: Self-MM's code takes the mean of
an empty set, NaN).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

FUSED = "f"


class LabelBank:
    """ULGM state for the keys ``"f"`` and `modalities` over a training split of N samples."""

    def __init__(self, labels: torch.Tensor, widths: Mapping[str, int], *, clip: float = 3.0,
                 exclude_zero: bool = True, eps: float = 1e-8) -> None:
        if FUSED not in widths:
            raise ValueError(f"LabelBank needs the fused key {FUSED!r} among its widths, got {sorted(widths)}")
        labels = labels.detach().float().reshape(-1)
        self.keys = (FUSED,) + tuple(k for k in widths if k != FUSED)
        self.clip, self.exclude_zero, self.eps = float(clip), bool(exclude_zero), float(eps)
        n, device = labels.shape[0], labels.device
        self.labels = {k: labels.clone() for k in self.keys}
        self.features = {k: torch.zeros(n, int(widths[k]), device=device) for k in self.keys}
        self.centres = {k: {"pos": torch.zeros(int(widths[k]), device=device),
                            "neg": torch.zeros(int(widths[k]), device=device)} for k in self.keys}

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(k for k in self.keys if k != FUSED)

    def __len__(self) -> int:
        return int(self.labels[FUSED].shape[0])

    # --- the three steps ------------------------------------------------------------------------
    def delta(self, key: str, features: torch.Tensor) -> torch.Tensor:
        """δ = (d_n − d_p)/(d_p + ε) of `features` (B, w) against `key`'s current centres."""
        c = self.centres[key]
        d_p = torch.linalg.vector_norm(features - c["pos"], dim=-1)
        d_n = torch.linalg.vector_norm(features - c["neg"], dim=-1)
        return (d_n - d_p) / (d_p + self.eps)

    def update_labels(self, features: Mapping[str, torch.Tensor], index: torch.Tensor, epoch: int) -> None:
        """Step 1: the momentum update of the batch's generated labels (epoch >= 2)."""
        y_m = self.labels[FUSED][index]
        delta_f = self.delta(FUSED, features[FUSED].float())
        n = int(epoch)
        for s in self.modalities:
            delta_s = self.delta(s, features[s].float())
            alpha = delta_s / (delta_f + self.eps)
            target = 0.5 * alpha * y_m + 0.5 * (y_m + delta_s - delta_f)
            target = torch.clamp(target, min=-self.clip, max=self.clip)
            self.labels[s][index] = (n - 1) / (n + 1) * self.labels[s][index] + 2 / (n + 1) * target

    def write_features(self, features: Mapping[str, torch.Tensor], index: torch.Tensor) -> None:
        """Step 2: the batch's features into the bank."""
        for k in self.keys:
            self.features[k][index] = features[k].detach().float()

    def update_centres(self) -> None:
        """Step 3: class centres from the whole bank and each key's current labels."""
        for k in self.keys:
            y, h = self.labels[k], self.features[k]
            pos = y > 0 if self.exclude_zero else y >= 0
            for name, mask in (("pos", pos), ("neg", y < 0)):
                count = mask.sum()
                total = (h * mask.unsqueeze(1).to(h.dtype)).sum(0)
                mean = total / count.clamp(min=1).to(h.dtype)
                self.centres[k][name] = torch.where(count > 0, mean, self.centres[k][name])

    def step(self, features: Mapping[str, torch.Tensor], index: torch.Tensor, epoch: int) -> None:
        """After one batch's backward pass: steps 1 (from epoch 2), 2 and 3, in Self-MM's order."""
        missing = [k for k in self.keys if k not in features]
        if missing:
            raise ValueError(f"LabelBank.step: no features for {missing} (bank keys {list(self.keys)})")
        index = index.to(self.labels[FUSED].device)
        if epoch > 1:
            self.update_labels(features, index, epoch)
        self.write_features(features, index)
        self.update_centres()

    def weights(self, key: str, index: torch.Tensor) -> torch.Tensor:
        """w_s = tanh|y_s − y_M| of the samples `index` (the unimodal loss weights)."""
        return torch.tanh(torch.abs(self.labels[key][index] - self.labels[FUSED][index]))

    # --- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"keys": list(self.keys),
                "labels": {k: v.detach().cpu().clone() for k, v in self.labels.items()},
                "features": {k: v.detach().cpu().clone() for k, v in self.features.items()},
                "centres": {k: {c: v.detach().cpu().clone() for c, v in cs.items()}
                            for k, cs in self.centres.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        keys = tuple(state.get("keys", ()))
        if keys != self.keys:
            raise ValueError(f"Self-MM label bank: the checkpoint holds heads {list(keys)}, this run "
                             f"has {list(self.keys)} (modalities or disabled terms differ)")
        for k in self.keys:
            for name, mine, theirs in (("labels", self.labels[k], state["labels"][k]),
                                       ("features", self.features[k], state["features"][k])):
                if tuple(theirs.shape) != tuple(mine.shape):
                    raise ValueError(f"Self-MM label bank: checkpoint {name}[{k!r}] has shape "
                                     f"{tuple(theirs.shape)}, this run needs {tuple(mine.shape)} "
                                     "(another training split or bank width)")
            device = self.labels[k].device
            self.labels[k] = state["labels"][k].to(device).float().clone()
            self.features[k] = state["features"][k].to(device).float().clone()
            self.centres[k] = {c: state["centres"][k][c].to(device).float().clone() for c in ("pos", "neg")}
