"""benchmarks/gpu_check.sh in its CPU short form (what CI can run): the CPU parts ran and wrote their
JSON, every GPU part is listed as skipped with the reason, nothing failed. `slow` (~20-60 s: it
builds the authors'-shape 768-wide BERT)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.sweeps.conftest import REPO

pytestmark = pytest.mark.slow
GPU_PARTS = {"pytest_gpu", "train_step_bf16", "trials_per_hour_minilm", "trials_per_hour_bert_base", "gpu_memory"}


def test_the_cpu_short_form_runs_its_cpu_parts_and_says_what_it_skipped(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: run the full form there")
    out = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--cpu-short", "--results", str(tmp_path)], cwd=REPO,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["mode"] == "cpu-short" and summary["cuda"] is False and summary["failed"] == []
    assert summary["ran"] == ["train_step_fp32"]
    assert set(summary["skipped"]) == GPU_PARTS
    assert all("no CUDA device" in why for why in summary["skipped"].values())
    step = json.loads((tmp_path / "train_step_fp32.json").read_text())
    row = step["rows"][0]
    assert row["batch_size"] == 8 and row["samples_per_s"]["project"] > 0
    assert step["text_encoder"]["hidden_size"] == 768 and step["inputs"]["text_tokens"] == 50  # the authors' shapes
    assert step["args"]["device"] == "cpu" and step["args"]["amp"] is False
    assert "skipped" in out.stdout and "summary.json" in out.stdout
    bad = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--fast"], cwd=REPO, capture_output=True, text=True,
                         timeout=30)
    assert bad.returncode == 2 and "unknown option --fast" in bad.stderr
