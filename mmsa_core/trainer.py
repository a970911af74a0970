"""The single-run trainer: one function that trains one `RunConfig` and returns its history.

Shape: ``train(cfg, data, *, on_epoch_end=None) -> RunResult``. The loop is the HSCL authors' recipe
(docs/METHODS.md, HSCL §6): Adam over the method's parameter groups, StepLR, grad-norm clipping, early
stopping on the validation split. Everything that differs between methods — forward passes and loss
terms per step, per-sample state, the predicting head, gradient accumulation — is asked of the
method's `MethodRuntime` (`mmsa_core.methods.runtime`); the loop itself never names a method. Test metrics are computed every epoch for information and
*read at the best validation epoch* — the test split never takes part in selection.

Gradient accumulation (``runtime.accumulation_steps`` = k > 1): one optimiser step per k batches on
the *sum* of their losses' gradients, as Self-MM's code does. Adam's ``weight_decay`` is coupled (it
adds wd·p to the gradient at each step), so the step equals one unaccumulated step on the summed
loss; dividing each loss by k instead would make the decay k times stronger relative to the
gradient. The clipping bound applies to that summed gradient. A final incomplete group at the end of
an epoch is stepped too (Self-MM's code drops its gradients).

The sweep layer reports through `on_epoch_end(record, save_checkpoint)`; `save_checkpoint(dir)`
writes everything needed to continue the run bit-for-bit (`resume_from=dir`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from mmsa_core import record_names as names
from mmsa_core.config import PLACEMENT_FIELDS, RunConfig
from mmsa_core.methods.runtime import MethodRuntime, build_runtime
from mmsa_core.metrics import regression_metrics

if TYPE_CHECKING:
    from mmsa_core.data import MSADataset
    from mmsa_core.data.batching import Batch
    from mmsa_core.data.corruption import Corruption

STATE_FILE = "trainer_state.pt"
SaveCheckpoint = Callable[[str | Path], None]
EpochCallback = Callable[["EpochRecord", SaveCheckpoint], None]


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN/inf: the run stops instead of reporting a silent NaN metric."""


class CheckpointMismatchError(ValueError):
    """A checkpoint was written by a run with other settings than the one asked to continue it."""


# Fields a resumed run may change: where it runs, and how long it may go on (a longer schedule, a
# later stop). Every other field decides what each epoch computes, and must match the checkpoint.
RESUMABLE_CHANGES = frozenset({*PLACEMENT_FIELDS, "max_epochs", "patience"})


@dataclass
class EpochRecord:
    epoch: int  # 1-based
    train: dict[str, float]  # "loss" and every active term's unweighted mean
    valid: dict[str, float]
    test: dict[str, float]  # for information only
    lr: float
    seconds: float
    is_best: bool
    best_epoch: int
    best_valid: dict[str, float]
    best_test: dict[str, float]  # test metrics at best_epoch

    def as_metrics(self) -> dict[str, float]:
        """Flat MLflow/Tune metric dict, names from `mmsa_core.record_names` (one batch per epoch)."""
        out: dict[str, float] = {}
        for split, values in (("train", self.train), ("valid", self.valid), ("test", self.test)):
            out.update({names.epoch_metric(split, k): v for k, v in values.items()})
        out.update(names.best_metrics("valid", self.best_valid))
        out.update(names.best_metrics("test", self.best_test))
        out.update({names.BEST_EPOCH: float(self.best_epoch), names.EPOCHS_RUN: float(self.epoch),
                    names.LEARNING_RATE: self.lr, names.EPOCH_SECONDS: self.seconds})
        return {k: float(v) for k, v in out.items()}


@dataclass
class RunResult:
    config: RunConfig
    history: list[EpochRecord]
    best_epoch: int
    best_valid: dict[str, float]
    best_test: dict[str, float]
    epochs_run: int
    stopped_early: bool  # patience ran out before max_epochs
    dataset: str = ""


@dataclass
class _Progress:
    """Early-stopping bookkeeping; part of the checkpoint."""

    epoch: int = 0
    best_epoch: int = 0
    best_score: float = math.inf  # lower is better (metrics are sign-flipped where needed)
    best_valid: dict[str, float] = field(default_factory=dict)
    best_test: dict[str, float] = field(default_factory=dict)
    bad_epochs: int = 0
    stopped_early: bool = False
    history: list[EpochRecord] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# set-up helpers


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and torch; optionally ask torch for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} was asked for but CUDA is not available")
    return device


def build_model(cfg: RunConfig, data: "MSADataset") -> torch.nn.Module:
    """The method's model for `data` (on the CPU), as its runtime builds it."""
    return build_runtime(cfg, data, "cpu").model


def build_optimizer(cfg: RunConfig, runtime: MethodRuntime) -> torch.optim.Optimizer:
    """Adam over the method's parameter groups (default: text encoder and rest, HSCL §6)."""
    return torch.optim.Adam(runtime.parameter_groups(), weight_decay=cfg.weight_decay, fused=True)


def load_run_data(cfg: RunConfig) -> "MSADataset":
    """The dataset a config names. Synthetic data uses data seed 0 whatever the run's seed, so
    every seed of a configuration sees the same samples (seeds vary the training, not the data)."""
    from mmsa_core.data import load_dataset

    sizes = None
    if cfg.synthetic_train or cfg.synthetic_valid or cfg.synthetic_test:
        sizes = (cfg.synthetic_train or 256, cfg.synthetic_valid or 64, cfg.synthetic_test or 64)
    return load_dataset(cfg.data, text_encoder=cfg.text_encoder, max_text_len=cfg.max_text_len,
                        sizes=sizes)


def prepare_batch(batch: "Batch", device: torch.device, trim: bool) -> "Batch":
    """Move a batch to the device, cut all-padding columns (pure speed: masks make them inert)."""
    if trim:
        lt = max(int(batch.text_mask.sum(1).max()), 1)
        la = max(int(batch.audio_mask.sum(1).max()), 1)
        lv = max(int(batch.vision_mask.sum(1).max()), 1)
        batch = dataclasses.replace(
            batch, text_ids=batch.text_ids[:, :lt], text_mask=batch.text_mask[:, :lt],
            text_type=batch.text_type[:, :lt], audio=batch.audio[:, :la], audio_mask=batch.audio_mask[:, :la],
            vision=batch.vision[:, :lv], vision_mask=batch.vision_mask[:, :lv])
    return batch.to(device, non_blocking=True)


def _autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast(device.type, enabled=False)


@torch.no_grad()
def predict(runtime: MethodRuntime, split, cfg: RunConfig, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Predictions (of the head the method chooses) and labels over a split, in the split's order."""
    from mmsa_core.data.batching import make_loader

    runtime.model.eval()
    preds, labels = [], []
    for batch in make_loader(split, batch_size=max(cfg.batch_size, 64), shuffle=False, seed=0):
        with _autocast(device, cfg.amp):
            prediction = runtime.predict(prepare_batch(batch, device, runtime.trim_padding))
        preds.append(prediction.float().cpu().numpy())
        labels.append(batch.labels.numpy())
    return np.concatenate(preds), np.concatenate(labels)


def evaluate(runtime: MethodRuntime, split, cfg: RunConfig, device: torch.device) -> dict[str, float]:
    pred, true = predict(runtime, split, cfg, device)
    return regression_metrics(pred, true)


def _score(cfg: RunConfig, metrics: dict[str, float]) -> float:
    """Validation score to minimise."""
    value = metrics[cfg.select_metric]
    return value if cfg.select_metric == "mae" else -value


# ---------------------------------------------------------------------------------------------
# the loop


def train(cfg: RunConfig, data: "MSADataset | None" = None, *,
          on_epoch_end: EpochCallback | None = None,
          resume_from: str | Path | None = None,
          checkpoint_dir: str | Path | None = None,
          progress: bool = True) -> RunResult:
    """Train one configuration; return its per-epoch history and best-validation-epoch metrics."""
    from mmsa_core.data.batching import make_loader

    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    seed_everything(cfg.seed, cfg.deterministic)
    device = resolve_device(cfg.device)
    data = data if data is not None else load_run_data(cfg)
    runtime = build_runtime(cfg, data, device)
    model = runtime.model
    optimizer = build_optimizer(cfg, runtime)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.lr_step_epoch, gamma=cfg.lr_gamma)
    use_scaler = cfg.amp and device.type == "cuda" and not torch.cuda.is_bf16_supported()
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    state = _Progress()
    best_weights: dict[str, torch.Tensor] | None = None

    if checkpoint_dir is not None and resume_from is None and (Path(checkpoint_dir) / STATE_FILE).is_file():
        resume_from = checkpoint_dir
    if resume_from is not None:
        best_weights = _restore(Path(resume_from), cfg, runtime, optimizer, scheduler, scaler, state, device)

    def save_checkpoint(directory: str | Path) -> None:
        _save(Path(directory), cfg, runtime, optimizer, scheduler, scaler, state, best_weights)

    terms_active = cfg.method_spec.active_terms(cfg)
    accumulate = max(int(runtime.accumulation_steps), 1)
    bar = _progress_bar(progress, cfg, data.name, start=state.epoch)
    while state.epoch < cfg.max_epochs and not state.stopped_early:
        epoch = state.epoch + 1
        started = time.perf_counter()
        model.train()
        runtime.on_epoch_start(epoch)
        sums = {name: 0.0 for name in ("loss", *terms_active)}
        seen = 0
        loader = make_loader(data.splits["train"], batch_size=cfg.batch_size, shuffle=True,
                             seed=cfg.seed * 1000 + epoch)
        steps = len(loader)
        optimizer.zero_grad(set_to_none=True)
        for step, batch in enumerate(loader, start=1):
            batch = prepare_batch(batch, device, runtime.trim_padding)
            with _autocast(device, cfg.amp):
                terms = runtime.training_terms(batch, epoch)
            loss = runtime.total_loss(terms)
            if not torch.isfinite(loss):
                bad = [k for k, v in terms.items() if not torch.isfinite(v)] or ["total"]
                raise NonFiniteLossError(
                    f"non-finite loss at epoch {epoch}, step {step} (terms {bad}: "
                    + ", ".join(f"{k}={float(v):.4g}" for k, v in terms.items())
                    + f"); config: lr_text={cfg.lr_text}, lr_other={cfg.lr_other}, "
                    + ", ".join(f"{k}={v}" for k, v in cfg.to_dict().items() if k.startswith(cfg.method + ".")))
            # accumulated batches' losses are summed, not averaged: Adam's coupled weight decay adds
            # wd·p to the step's gradient once, so a mean would weigh it `accumulate` times as much
            scaler.scale(loss).backward()
            runtime.after_backward(batch)
            if step % accumulate == 0 or step == steps:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
            n = batch.labels.shape[0]
            seen += n
            sums["loss"] += float(loss.detach()) * n
            for k, v in terms.items():
                sums[k] += float(v.detach()) * n
        runtime.on_epoch_end(epoch)
        scheduler.step()
        train_stats = {k: v / max(seen, 1) for k, v in sums.items()}
        valid = evaluate(runtime, data.splits["valid"], cfg, device)
        test = evaluate(runtime, data.splits["test"], cfg, device)
        score = _score(cfg, valid)
        is_best = score < state.best_score
        state.epoch = epoch
        if is_best:
            state.best_score, state.best_epoch = score, epoch
            state.best_valid, state.best_test = dict(valid), dict(test)
            state.bad_epochs = 0
            best_weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            state.bad_epochs += 1
            if state.bad_epochs >= cfg.patience and epoch < cfg.max_epochs:
                state.stopped_early = True
        record = EpochRecord(epoch=epoch, train=train_stats, valid=valid, test=test,
                             lr=float(optimizer.param_groups[-1]["lr"]),
                             seconds=time.perf_counter() - started, is_best=is_best,
                             best_epoch=state.best_epoch, best_valid=dict(state.best_valid),
                             best_test=dict(state.best_test))
        state.history.append(record)
        bar.update(record)
        if checkpoint_dir is not None:
            save_checkpoint(checkpoint_dir)
        if on_epoch_end is not None:
            on_epoch_end(record, save_checkpoint)
    bar.close()
    return RunResult(config=cfg, history=list(state.history), best_epoch=state.best_epoch,
                     best_valid=dict(state.best_valid), best_test=dict(state.best_test),
                     epochs_run=state.epoch, stopped_early=state.stopped_early, dataset=data.name)


# ---------------------------------------------------------------------------------------------
# checkpoints


def _save(directory: Path, cfg: RunConfig, runtime: MethodRuntime, optimizer, scheduler, scaler,
          state: _Progress, best_weights) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    payload = {
        "config": cfg.to_dict(),
        "model": runtime.model.state_dict(),
        "method_state": runtime.state_dict(),
        "best_model": best_weights,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "progress": {k: v for k, v in vars(state).items() if k != "history"},
        "history": [vars(r) for r in state.history],
        "rng": {"python": random.getstate(), "numpy": np.random.get_state(),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
    }
    tmp = directory / (STATE_FILE + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, directory / STATE_FILE)  # atomic: a kill mid-write never leaves half a file


def _restore(directory: Path, cfg: RunConfig, runtime: MethodRuntime, optimizer, scheduler, scaler,
             state: _Progress, device):
    path = directory / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no trainer checkpoint at {path}")
    payload = torch.load(path, map_location=device, weights_only=False)
    check_resumable(payload.get("config") or {}, cfg, str(path))
    runtime.model.load_state_dict(payload["model"])
    runtime.load_state_dict(payload.get("method_state") or {})
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    scaler.load_state_dict(payload["scaler"])
    for k, v in payload["progress"].items():
        setattr(state, k, v)
    state.history = [EpochRecord(**r) for r in payload["history"]]
    rng = payload["rng"]
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"].cpu())
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])
    return payload["best_model"]


def check_resumable(saved: dict, cfg: RunConfig, where: str) -> None:
    """Refuse to continue a checkpoint with settings that change what an epoch computes.

    Compares the keys both configurations have (a checkpoint written before a field existed, or with
    an older key name, is compared on the rest); `RESUMABLE_CHANGES` may differ.
    """
    now = cfg.to_dict()
    changed = [f"{k} {saved[k]!r} -> {now[k]!r}" for k in sorted(set(saved) & set(now))
               if k not in RESUMABLE_CHANGES and _comparable(saved[k]) != _comparable(now[k])]
    if changed:
        raise CheckpointMismatchError(
            f"{where} was written by a run with other settings ({'; '.join(changed)}): continue it with the "
            "settings it was started with, or start afresh in another checkpoint directory")


def _comparable(value):
    return list(value) if isinstance(value, tuple) else value


def load_best_runtime(directory: str | Path, data: "MSADataset", *, device: str = "cpu",
                      cfg: RunConfig | None = None) -> tuple[RunConfig, MethodRuntime]:
    """The method runtime of a saved run with its best-validation weights, ready for evaluation.

    `cfg`: the run's configuration when the caller has it (else read from the checkpoint)."""
    payload = torch.load(Path(directory) / STATE_FILE, map_location=device, weights_only=False)
    if cfg is None:
        cfg = RunConfig.from_dict(payload["config"], source=str(directory))
    runtime = build_runtime(cfg, data, device)
    runtime.model.load_state_dict(payload["best_model"] or payload["model"])
    return cfg, runtime


def load_best_model(directory: str | Path, data: "MSADataset", *, device: str = "cpu") -> tuple[RunConfig, torch.nn.Module]:
    """The best-validation weights of a saved run, ready for evaluation."""
    cfg, runtime = load_best_runtime(directory, data, device=device)
    return cfg, runtime.model


def evaluate_checkpoint(cfg: RunConfig, data: "MSADataset", checkpoint_dir: str | Path, *,
                        split: str = "test", corruption: "Corruption | None" = None) -> dict[str, float]:
    """Metrics of a checkpoint's best-validation weights on a split, optionally corrupted."""
    from mmsa_core.data.corruption import apply_corruption

    device = resolve_device(cfg.device)
    _, runtime = load_best_runtime(checkpoint_dir, data, device=str(device), cfg=cfg)
    arrays = data.splits[split]
    if corruption is not None:
        arrays = apply_corruption(arrays, corruption)
    seed_everything(cfg.seed, cfg.deterministic)  # faithful mode's random [CLS] stays reproducible
    return evaluate(runtime, arrays, cfg, device)


# ---------------------------------------------------------------------------------------------
# progress


class _progress_bar:
    """A tqdm bar over epochs showing the latest validation MAE (silent when disabled)."""

    def __init__(self, enabled: bool, cfg: RunConfig, dataset: str, start: int):
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=cfg.max_epochs, initial=start, desc=f"{cfg.method}/{dataset} seed {cfg.seed}",
                             unit="epoch", dynamic_ncols=True)

    def update(self, record: EpochRecord) -> None:
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{record.train['loss']:.3f}", val_mae=f"{record.valid['mae']:.3f}",
                                  best=record.best_epoch)
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
