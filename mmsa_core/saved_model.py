"""A trained model on disk, without pickles: its best-validation weights and the configuration that built it.

A model directory holds ``model.safetensors`` (the weights, safetensors: no code runs when it is
read), ``config.json`` (the run's flat `RunConfig`) and ``model.json`` (what it was trained on and
scored: dataset name, digest and split sizes, the best epoch, validation and test metrics). The sweeps
log the final stage's best model as such a directory (MLflow artifact ``model/`` of that run; fetch
it with ``mlflow artifacts download --run-id RUN --artifact-path model``); `load_model` reads it back
and ``python -m mmsa_core.predict`` scores a dataset with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmsa_core.config import RunConfig
    from mmsa_core.data import MSADataset
    from mmsa_core.methods.runtime import MethodRuntime

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
INFO_FILE = "model.json"


@dataclass
class LoadedModel:
    """A model read back by `load_model`: its configuration, its runtime (in eval mode) and its record."""

    config: "RunConfig"
    runtime: "MethodRuntime"
    info: dict[str, Any]

    device: str = "cpu"

    @property
    def model(self) -> Any:
        return self.runtime.model

    def predict(self, split: Any) -> tuple[Any, Any]:
        """Predictions and labels over a split (``data.splits["test"]``), seeded as the trainer evaluates,
        so that a model's test MAE is reproduced exactly."""
        from mmsa_core.trainer import predict, resolve_device, seed_everything

        seed_everything(self.config.seed, self.config.deterministic)
        return predict(self.runtime, split, self.config, resolve_device(self.device))


def save_model(directory: str | Path, config: "RunConfig", weights: dict[str, Any], *,
               info: dict[str, Any] | None = None) -> Path:
    """Write a model directory (see the module docstring); returns it."""
    import torch
    from safetensors.torch import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in weights.items() if isinstance(v, torch.Tensor)}
    save_file(tensors, str(out / WEIGHTS_FILE))
    (out / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True))
    (out / INFO_FILE).write_text(json.dumps(info or {}, indent=2, sort_keys=True, default=str))
    return out


def save_checkpoint_model(checkpoint_dir: str | Path, directory: str | Path, *,
                          info: dict[str, Any] | None = None) -> Path:
    """A model directory from a trainer checkpoint (its best-validation weights)."""
    import torch

    from mmsa_core.config import RunConfig
    from mmsa_core.trainer import STATE_FILE

    payload = torch.load(Path(checkpoint_dir) / STATE_FILE, map_location="cpu", weights_only=False)
    config = RunConfig.from_dict(payload["config"], source=str(checkpoint_dir))
    weights = payload.get("best_model") or payload["model"]
    progress = payload.get("progress", {})
    record = {"best_epoch": progress.get("best_epoch"), "best_valid": progress.get("best_valid"),
              "best_test": progress.get("best_test"), **(info or {})}
    return save_model(directory, config, weights, info=record)


def model_dir(directory: str | Path) -> Path:
    """`directory` itself when it holds a model, else its ``model/`` folder when that does: what
    ``mlflow artifacts download --artifact-path model --dst-path DIR`` leaves is ``DIR/model``."""
    root = Path(directory)
    if not (root / CONFIG_FILE).is_file() and (root / "model" / CONFIG_FILE).is_file():
        return root / "model"
    return root


def load_model(directory: str | Path, data: "MSADataset | None" = None, *, device: str = "cpu") -> LoadedModel:
    """The model of a model directory, ready to predict. `data` (default: the data its configuration
    names) gives the feature widths and, for methods that keep per-sample state, the training split."""
    from safetensors.torch import load_file

    from mmsa_core.config import RunConfig
    from mmsa_core.methods.runtime import build_runtime
    from mmsa_core.trainer import load_run_data

    root = model_dir(directory)
    missing = [f for f in (WEIGHTS_FILE, CONFIG_FILE) if not (root / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{root}: not a model directory (missing {', '.join(missing)})")
    config = RunConfig.from_dict(json.loads((root / CONFIG_FILE).read_text()), source=str(root / CONFIG_FILE))
    info = json.loads((root / INFO_FILE).read_text()) if (root / INFO_FILE).is_file() else {}
    data = data if data is not None else load_run_data(config)
    runtime = build_runtime(config, data, device)
    runtime.model.load_state_dict(load_file(str(root / WEIGHTS_FILE), device=device))
    runtime.model.eval()
    return LoadedModel(config, runtime, info, device)
