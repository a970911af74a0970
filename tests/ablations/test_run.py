"""The ablation runner end to end on a real local Ray: tiny spec, 2 variants x 2 seeds."""

from __future__ import annotations

import math
import textwrap

import pytest

from tests.ablations.conftest import run_cli, study_runs

pytestmark = pytest.mark.slow

TINY = """
# Question: does the runner run? (tiny encoder, synthetic data, 2 epochs)
name: tiny-e2e
method: hscl
data: synthetic-mosi
base: {text_encoder: tiny, synthetic_train: 96, synthetic_valid: 48, synthetic_test: 48,
       batch_size: 32, max_epochs: 2, lr_text: 0.001, av_layers: 1}
seeds: [1111, 1112]
variants:
  - full
  - {name: text_only, modalities: t}
robustness: {kinds: [stream, frames], modalities: [av], rates: [%s]}
"""
METRICS = ("mae", "corr", "acc7", "acc5", "acc2_has0", "f1_has0", "acc2_non0", "f1_non0")


def test_tiny_study_end_to_end_then_resume(ablation_env, tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(textwrap.dedent(TINY % "0.0, 0.5"))
    storage = tmp_path / "runs"
    uri = f"sqlite:///{storage}/mlflow.db"
    args = [str(spec), "--storage-path", str(storage), "--num-cpus", "2", "--verbose", "0"]

    # 1. first run: 4 children trained, robustness evaluated inside the reference trials
    first = run_cli(args, ablation_env)
    assert first.returncode == 0, first.stdout[-6000:]
    assert "0 finished before, 4 to train" in first.stdout
    client, parent, children = study_runs(uri, "tiny-e2e")
    tags = parent.data.tags
    assert parent.info.status == "FINISHED" and parent.info.run_name == "tiny-e2e"
    assert (tags["kind"], tags["method"], tags["dataset"]) == ("ablation", "hscl", "synthetic-mosi")
    assert {"ablation_spec.yaml", "ablation_configs.json", "ablation_summary.json"} <= {
        a.path for a in client.list_artifacts(parent.info.run_id)}

    assert len(children) == 4 and all(c.info.status == "FINISHED" for c in children)
    seen = set()
    for c in children:
        t = c.data.tags
        assert t["stage"] == "ablation" and t["sweep_name"] == "tiny-e2e"
        assert (t["method"], t["dataset"]) == ("hscl", "synthetic-mosi")
        assert t["reference"] == ("true" if t["ablation"] == "full" else "false")
        assert c.data.params["seed"] == t["seed"]
        assert c.data.params["modalities"] == ("tav" if t["ablation"] == "full" else "t")
        for m in METRICS:
            assert math.isfinite(c.data.metrics[f"best/test/{m}"])
        robust = sorted(k for k in c.data.metrics if k.startswith("robust/"))
        if t["reference"] == "true":
            assert len(robust) == 2 * 2 * len(METRICS)  # kinds x rates x metrics
            assert "robust/frames-av/r0.50/test/acc2_non0" in robust
            # rate 0 leaves the test split untouched: the clean metrics at the best epoch
            assert c.data.metrics["robust/stream-av/r0.00/test/mae"] == pytest.approx(
                c.data.metrics["best/test/mae"], abs=1e-6)
        else:
            assert robust == []
        seen.add((t["ablation"], int(t["seed"])))
    assert seen == {("full", 1111), ("full", 1112), ("text_only", 1111), ("text_only", 1112)}
    before = {c.info.run_id: len(client.get_metric_history(c.info.run_id, "valid/mae")) for c in children}

    # 2. re-run: nothing is trained again (no new run, no new epoch)
    again = run_cli(args, ablation_env)
    assert again.returncode == 0, again.stdout[-6000:]
    assert "4 finished before, 0 to train" in again.stdout
    _, parent2, children2 = study_runs(uri, "tiny-e2e")
    assert parent2.info.run_id == parent.info.run_id
    assert {c.info.run_id: len(client.get_metric_history(c.info.run_id, "valid/mae")) for c in children2} == before

    # 3. a robustness rate added later: evaluated from the checkpoints, still nothing trained
    spec.write_text(textwrap.dedent(TINY % "0.0, 0.5, 1.0"))
    third = run_cli(args, ablation_env)
    assert third.returncode == 0, third.stdout[-6000:]
    assert "0 to train" in third.stdout and "2 driver" in third.stdout
    _, _, children3 = study_runs(uri, "tiny-e2e")
    assert len(children3) == 4
    for c in children3:
        if c.data.tags["reference"] == "true":
            assert math.isfinite(c.data.metrics["robust/stream-av/r1.00/test/mae"])

    # 4. other settings under the same study name are refused before anything runs
    changed = run_cli(args + ["--max-epochs", "3"], ablation_env)
    assert changed.returncode == 2
    assert "already holds runs trained with other settings" in changed.stdout
    assert "max_epochs 2 -> 3" in changed.stdout and "--name" in changed.stdout

