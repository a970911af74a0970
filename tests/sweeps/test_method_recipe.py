"""The add-a-method recipe (docs/ARCHITECTURE.md): a method package that lives in the test tree,
named in MMSA_METHOD_MODULES, runs through the single-run CLI, a --smoke sweep and an ablation spec
without any file of the product knowing it exists."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.ablations.conftest import run_cli as run_ablation_cli
from tests.ablations.conftest import study_runs
from tests.sweeps.conftest import REPO, run_cli, store

TOY = "tests.toy_method"


def _env(base: dict) -> dict:
    env = dict(base)
    env["MMSA_METHOD_MODULES"] = TOY
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env


def test_the_toy_method_is_registered_from_the_environment(monkeypatch):
    from mmsa_core.config import RunConfig
    from mmsa_core.methods import get_method, method_names

    monkeypatch.setenv("MMSA_METHOD_MODULES", TOY)
    assert "toy_method" in method_names() and get_method("toy_method").terms == ("task", "spread")
    cfg = RunConfig.from_dict({"method": "toy_method", "toy_method.pool": "mean"})
    assert cfg.params.pool == "mean" and "toy_method.spread_weight" in cfg.to_dict()
    with pytest.raises(ValueError, match="belong to another method"):
        RunConfig.from_dict({"method": "toy_method", "hscl.tau": 0.3})


def test_a_method_without_presets_trains_mosei_on_moseis_data_and_widths(monkeypatch):
    """The recipe's trap that was: a method with ``presets={}`` trained ``--preset mosei`` on MOSI's
    data and encoder shapes. The dataset's shared settings now come from the core."""
    from mmsa_core.config import RunConfig
    from mmsa_core.methods import get_method
    from mmsa_core.trainer import load_run_data, train

    monkeypatch.setenv("MMSA_METHOD_MODULES", TOY)
    assert get_method("toy_method").presets == {}
    cfg = RunConfig.paper("toy_method", "mosei")
    assert cfg.data == "synthetic-mosei" and (cfg.audio_heads, cfg.vision_heads) == (2, 5)
    small = cfg.replace(text_encoder="tiny", synthetic_train=48, synthetic_valid=24, synthetic_test=24,
                        batch_size=16, max_epochs=1, av_layers=1, num_threads=1)
    data = load_run_data(small)
    assert (data.audio_dim, data.vision_dim) == (74, 35)  # MOSEI's feature widths
    res = train(small, data, progress=False)
    assert res.epochs_run == 1 and res.best_test["mae"] == res.best_test["mae"]


def test_single_run_cli(tmp_path):
    out = tmp_path / "run.json"
    proc = subprocess.run(
        [sys.executable, "-m", "mmsa_core.train", "--method", "toy_method", "--text-encoder", "tiny",
         "--max-epochs", "2", "--batch-size", "32", "--set", "synthetic_train=96", "--set", "synthetic_valid=48",
         "--set", "synthetic_test=48", "--set", "av_layers=1", "--set", "toy_method.pool=mean",
         "--quiet", "--output-json", str(out)],
        cwd=REPO, env=_env(os.environ), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads(out.read_text())
    assert payload["config"]["method"] == "toy_method" and payload["config"]["toy_method.pool"] == "mean"
    assert "hscl.tau" not in payload["config"]  # only its own fields and the shared ones


@pytest.mark.slow
def test_smoke_sweep_and_ablation_spec(sweep_env, tmp_path):
    env = _env(sweep_env)
    storage = tmp_path / "runs"
    uri = f"sqlite:///{storage}/mlflow.db"
    res = run_cli(["--smoke", "--method", "toy_method", "--name", "toy", "--num-samples", "2",
                   "--max-epochs", "2", "--final-seeds", "1111", "--storage-path", str(storage),
                   "--num-cpus", "2", "--verbose", "0"], env)
    assert res.returncode == 0, res.stdout[-6000:]
    _, parents, search, final = store(uri)
    assert len(parents) == 1 and parents[0].data.tags["method"] == "toy_method"
    assert len(search) == 2 and len(final) == 1
    assert all(r.info.status == "FINISHED" for r in parents + search + final)
    assert all("toy_method.spread_weight" in r.data.params for r in search + final)

    spec = tmp_path / "toy.yaml"
    spec.write_text(textwrap.dedent("""
        name: toy-abl
        method: toy_method
        data: synthetic-mosi
        base: {text_encoder: tiny, synthetic_train: 96, synthetic_valid: 48, synthetic_test: 48,
               batch_size: 32, max_epochs: 1, av_layers: 1}
        seeds: [1111]
        variants:
          - full
          - {name: no_spread, disable: [spread]}
          - {name: mean_pool, overrides: {toy_method.pool: mean}}
        """))
    abl = run_ablation_cli([str(spec), "--storage-path", str(storage), "--num-cpus", "2", "--verbose", "0"], env)
    assert abl.returncode == 0, abl.stdout[-6000:]
    _, parent, children = study_runs(uri, "toy-abl")
    assert parent.info.status == "FINISHED" and len(children) == 3
    assert all(c.info.status == "FINISHED" for c in children)
    no_spread = [c for c in children if c.data.tags["ablation"] == "no_spread"][0]
    assert "train/spread" not in no_spread.data.metrics and "train/task" in no_spread.data.metrics
