"""Single-run trainer: overfitting, determinism, selection on validation only, resume, failures."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mmsa_core.config import RunConfig
from mmsa_core.methods.hscl import runtime as hscl_runtime
from mmsa_core.data.batching import make_loader
from mmsa_core.trainer import (STATE_FILE, NonFiniteLossError, build_optimizer,
                               evaluate_checkpoint, train)
from tests.core.conftest import tiny_config

ROOT = Path(__file__).resolve().parents[2]


def test_model_overfits_a_small_batch(tiny_data):
    torch.manual_seed(0)
    cfg = tiny_config(dropout=0.0, lr_text=1e-3, lr_other=3e-3, weight_decay=0.0)
    from mmsa_core.methods.runtime import build_runtime

    runtime = build_runtime(cfg, tiny_data)
    model = runtime.model
    opt = build_optimizer(cfg, runtime)
    batch = next(iter(make_loader(tiny_data.splits["train"], batch_size=16, shuffle=False, seed=0)))
    first = None
    for _ in range(150):
        out = model(batch.text_ids, batch.text_mask, batch.text_type, batch.audio, batch.audio_mask,
                    batch.vision, batch.vision_mask)
        terms = hscl_runtime.compute_terms(cfg, out, batch.labels)
        loss = runtime.total_loss(terms)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else float(terms["task"].detach())
    assert first > 0.5
    assert float(terms["task"]) < 0.1, f"L1 only fell from {first:.3f} to {float(terms['task']):.3f}"


def test_same_seed_same_metrics_and_other_seed_differs(tiny_data):
    a = train(tiny_config(seed=7), tiny_data, progress=False)
    b = train(tiny_config(seed=7), tiny_data, progress=False)
    c = train(tiny_config(seed=8), tiny_data, progress=False)
    assert [r.valid for r in a.history] == [r.valid for r in b.history]
    assert a.best_test == b.best_test
    assert a.history[-1].valid != c.history[-1].valid


def test_test_metrics_are_read_at_the_best_validation_epoch(tiny_data):
    res = train(tiny_config(max_epochs=4), tiny_data, progress=False)
    maes = [r.valid["mae"] for r in res.history]
    assert res.best_epoch == int(np.argmin(maes)) + 1
    assert res.best_test == res.history[res.best_epoch - 1].test
    assert res.best_valid == res.history[res.best_epoch - 1].valid
    assert res.epochs_run == 4 and not res.stopped_early
    assert set(res.history[0].train) == {"loss", *res.config.active_losses}
    metrics = res.history[-1].as_metrics()
    assert {"train/loss", "valid/mae", "test/acc2_non0", "best/test/mae", "best_epoch"} <= set(metrics)
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values())


def test_early_stopping_uses_patience(tiny_data):
    # a learning rate too small to change anything: validation never improves after epoch 1
    res = train(tiny_config(max_epochs=10, patience=2, lr_text=1e-30, lr_other=1e-30), tiny_data, progress=False)
    assert res.stopped_early and res.epochs_run == 3 and res.best_epoch == 1


def test_resume_from_checkpoint_reproduces_uninterrupted_run(tiny_data, tmp_path):
    full = train(tiny_config(max_epochs=3), tiny_data, progress=False)
    part = train(tiny_config(max_epochs=2), tiny_data, checkpoint_dir=tmp_path, progress=False)
    assert (tmp_path / STATE_FILE).is_file() and part.epochs_run == 2
    resumed = train(tiny_config(max_epochs=3), tiny_data, checkpoint_dir=tmp_path, progress=False)
    assert [r.epoch for r in resumed.history] == [1, 2, 3]
    assert resumed.history[-1].valid == full.history[-1].valid
    assert resumed.best_test == full.best_test


def test_callback_gets_every_epoch_and_can_checkpoint(tiny_data, tmp_path):
    seen = []

    def on_epoch_end(record, save_checkpoint):
        save_checkpoint(tmp_path / f"e{record.epoch}")
        seen.append(record.epoch)

    res = train(tiny_config(max_epochs=2), tiny_data, on_epoch_end=on_epoch_end, progress=False)
    assert seen == [1, 2]
    # the checkpoint's best weights reproduce the best epoch's test metrics
    got = evaluate_checkpoint(res.config, tiny_data, tmp_path / "e2")
    assert got == pytest.approx(res.best_test, abs=1e-6)


@pytest.mark.parametrize("grad_clip", [1e9, 0.05], ids=["clip-never-binds", "clip-binds"])
def test_accumulation_with_weight_decay_is_one_step_on_the_summed_loss(tiny_data, tmp_path, monkeypatch,
                                                                       grad_clip):
    """k accumulated batches make one unaccumulated step on the sum of their k losses: Adam's coupled
    weight decay (wd·p added to the gradient) enters once per step, and the clipping bound is on the
    summed gradient. 96 samples in batches of 32 with k = 3: one step per epoch, two epochs."""
    import mmsa_core.trainer as trainer
    from mmsa_core.methods.runtime import build_runtime

    def accumulating(*args, **kwargs):
        runtime = build_runtime(*args, **kwargs)
        runtime.accumulation_steps = 3
        return runtime

    monkeypatch.setattr(trainer, "build_runtime", accumulating)
    cfg = tiny_config(method="l1", dropout=0.0, weight_decay=0.1, grad_clip=grad_clip, max_epochs=2)
    train(cfg, tiny_data, checkpoint_dir=tmp_path, progress=False)
    got = torch.load(tmp_path / STATE_FILE, weights_only=False)["model"]

    def one_step_per_epoch(loss_scale, epochs=(1, 2)):
        trainer.seed_everything(cfg.seed, cfg.deterministic)  # the trainer's initial weights
        runtime = build_runtime(cfg, tiny_data)
        optimizer = build_optimizer(cfg, runtime)
        for epoch in epochs:
            loader = make_loader(tiny_data.splits["train"], batch_size=32, shuffle=True,
                                 seed=cfg.seed * 1000 + epoch)
            assert len(loader) == 3
            loss = sum(runtime.total_loss(runtime.training_terms(trainer.prepare_batch(b, "cpu", True), epoch))
                       for b in loader)
            optimizer.zero_grad()
            (loss_scale * loss).backward()
            torch.nn.utils.clip_grad_norm_(runtime.model.parameters(), cfg.grad_clip)
            optimizer.step()
        return runtime.model.state_dict()

    def distance(a, b):
        return max(float((a[k] - b[k]).abs().max()) for k in b)

    summed = one_step_per_epoch(1.0)
    assert distance(got, summed) < 1e-5  # float32 summation order only (seen: 4e-7)
    assert distance(got, one_step_per_epoch(1.0, epochs=())) > 1e-3, "the weights moved"
    # the mean of the losses (this loop before) weighs the decay 3x, and its norm is a third of the
    # sum's against the same bound: elsewhere after two steps (seen: 4e-3 unclipped, 1.1e-3 clipped)
    assert distance(got, one_step_per_epoch(1 / 3)) > 5e-4


def test_non_finite_loss_stops_with_a_clear_error(tiny_data, monkeypatch):
    real = hscl_runtime.compute_terms
    calls = {"n": 0}

    def poisoned(cfg, out, labels):
        terms = real(cfg, out, labels)
        calls["n"] += 1
        if calls["n"] == 2:
            terms["supcr_ta"] = terms["supcr_ta"] * float("nan")
        return terms

    monkeypatch.setattr(hscl_runtime, "compute_terms", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, step 2 \(terms \['supcr_ta'\]"):
        train(tiny_config(), tiny_data, progress=False)


def test_cli_trains_and_writes_json_and_mlflow(tmp_path):
    out = tmp_path / "run.json"
    db = tmp_path / "mlflow.db"
    proc = subprocess.run(
        [sys.executable, "-m", "mmsa_core.train", "--text-encoder", "tiny", "--max-epochs", "2",
         "--batch-size", "32", "--set", "synthetic_train=96", "--set", "synthetic_valid=48",
         "--set", "synthetic_test=48", "--set", "num_threads=1", "--quiet",
         "--output-json", str(out), "--tracking-uri", f"sqlite:///{db}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Acc-2 non0" in proc.stdout and "synthetic-mosi" in proc.stdout
    payload = json.loads(out.read_text())
    assert payload["config"]["text_encoder"] == "tiny" and payload["dataset"] == "synthetic-mosi"
    assert set(payload["test"]) >= {"mae", "corr", "acc7", "acc2_non0", "f1_has0"}
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name("mmsa-synthetic-mosi")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert runs[0].data.metrics["best/test/mae"] == pytest.approx(payload["test"]["mae"])
    # recorded as the sweeps record their runs: stage tag, every key as a param, the dataset input
    tags = runs[0].data.tags
    assert (tags["stage"], tags["method"], tags["dataset"], tags["seed"]) == ("single", "hscl", "synthetic-mosi", "1111")
    assert runs[0].data.params["text_encoder"] == "tiny" and "hscl.tau" in runs[0].data.params
    assert [d.dataset.name for d in runs[0].inputs.dataset_inputs] == ["synthetic-mosi"]
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "valid/mae")] == [1, 2]


def test_cli_rejects_bad_configuration_before_training():
    proc = subprocess.run([sys.executable, "-m", "mmsa_core.train", "--set", "hscl.tau=-1", "--set", "omgea1=2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "omgea1" in proc.stderr and "valid fields" in proc.stderr


def test_importing_the_core_pulls_no_ray_mlflow_optuna_or_torch():
    code = ("import sys, mmsa_core, mmsa_core.config, mmsa_core.methods.hscl, mmsa_core.methods.l1, mmsa_core.data, "
            "mmsa_core.metrics, mmsa_core.train; "
            "bad = [m for m in ('ray', 'mlflow', 'optuna', 'torch', 'transformers') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _cli(*args, timeout=120):
    import time

    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "mmsa_core.train", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    return proc, time.monotonic() - start


def test_cli_refuses_a_missing_cuda_device_and_a_silent_store_in_seconds():
    """Exit 2, one line, no traceback, before any data is loaded or any epoch trained."""
    proc, seconds = _cli("--device", "cuda", "--text-encoder", "tiny")
    assert proc.returncode == 2 and seconds < 10, (seconds, proc.stderr[-2000:])
    assert "no CUDA device" in proc.stderr and "Traceback" not in proc.stderr
    proc, seconds = _cli("--tracking-uri", "http://127.0.0.1:9", "--text-encoder", "tiny")
    assert proc.returncode == 2 and seconds < 10, (seconds, proc.stderr[-2000:])
    assert "127.0.0.1:9" in proc.stderr and "Traceback" not in proc.stderr
    proc, _ = _cli("--method", "l1", "--faithful")
    assert proc.returncode == 2 and "--faithful is a switch of hscl; method 'l1' has none" in proc.stderr
    proc, _ = _cli("--set", "hscl.omgea1=0.1")
    assert proc.returncode == 2 and "did you mean 'hscl.omega1'" in proc.stderr


def test_cli_starts_from_a_best_config_file(tmp_path):
    from mmsa_core.train import build_parser, config_from_args

    best = tmp_path / "best_config.json"
    cfg = RunConfig.paper("mmckd").replace(max_epochs=3).with_params(students=2)
    best.write_text(json.dumps({"trial_id": "t1", "objective": 0.8, "config": cfg.to_dict()}))
    got = config_from_args(build_parser().parse_args(["--config", str(best), "--seed", "7"]))
    assert got == cfg.replace(seed=7)
    with pytest.raises(ValueError, match="configures 'mmckd', not --method hscl"):
        config_from_args(build_parser().parse_args(["--config", str(best), "--method", "hscl"]))
    assert config_from_args(build_parser().parse_args(["--faithful"])).params.faithful is True


def test_a_checkpoint_resumes_only_with_the_settings_it_was_written_with(tiny_data, tmp_path):
    from mmsa_core.trainer import CheckpointMismatchError

    train(tiny_config(max_epochs=1), tiny_data, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(CheckpointMismatchError, match=r"hscl.tau 0.5 -> 0.3; lr_other 0.001 -> 0.002"):
        train(tiny_config(max_epochs=2, tau=0.3, lr_other=2e-3), tiny_data, checkpoint_dir=tmp_path, progress=False)
    longer = train(tiny_config(max_epochs=2, patience=3), tiny_data, checkpoint_dir=tmp_path, progress=False)
    assert [r.epoch for r in longer.history] == [1, 2]  # a longer schedule and a later stop may change
