"""The command line: light --help, argument handling, and failing before any trial on bad input."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys

import numpy as np
import pytest

from mmsa_core.methods import method_names
from tests.sweeps.conftest import REPO

_PROBE = r"""
import runpy, sys
script = sys.argv[1]
sys.argv = [script, "--help"]
try:
    runpy.run_path(script, run_name="__main__")
except SystemExit:
    pass
heavy = sorted(m for m in ("ray", "torch", "mlflow", "optuna", "transformers") if m in sys.modules)
print("HEAVY", heavy)
"""
# entry script -> its default --method: one per method of the registry
ENTRIES = {f"sweeps/{m}.py": m for m in method_names()}
# the modules of the sweep layer that run Ray Tune (the trainable, callbacks, grids, the search)
TUNE_MODULES = {"tune_objects.py", "trial.py", "stage.py", "grid.py", "search.py"}


@pytest.mark.parametrize("script", sorted(ENTRIES))
def test_help_imports_no_heavy_library(script):
    out = subprocess.run([sys.executable, "-c", _PROBE, script], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert "--num-samples" in out.stdout and "--gpus-per-trial" in out.stdout
    assert f"usage: python {script}" in out.stdout
    assert "HEAVY []" in out.stdout, out.stdout[-500:] + out.stderr[-2000:]


@pytest.mark.parametrize("script", sorted(ENTRIES))
def test_help_runs_from_any_directory(tmp_path, script):
    out = subprocess.run([sys.executable, str(REPO / script), "--help"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--final-seeds" in out.stdout, out.stderr[-2000:]
    assert f"(default: {ENTRIES[script]})" in out.stdout  # --method's default


def test_method_choices_come_from_the_registry():
    from mmsa_core.methods import method_names
    from sweeps.cli import build_parser

    parser = build_parser()
    method = next(a for a in parser._actions if a.dest == "method")
    assert list(method.choices) == list(method_names()) and {"hscl", "l1"} <= set(method.choices)
    assert method.default == "hscl" and build_parser("l1").parse_args([]).method == "l1"
    assert build_parser("l1").prog == "python sweeps/l1.py"


def test_the_l1_entry_sweeps_l1_by_default():
    from sweeps.cli import build_parser, config_from_args

    cfg = config_from_args(build_parser("l1").parse_args(["--smoke"]))
    assert cfg.method == "l1" and cfg.name == "l1-synthetic-mosi" and cfg.base_run_config().method == "l1"
    other = config_from_args(build_parser("l1").parse_args(["--method", "hscl"]))
    assert other.method == "hscl"


def test_one_module_per_side_effect():
    """style item 9: only tracking imports mlflow; only the Tune modules import ray.tune."""
    pattern_mlflow = re.compile(r"^\s*(import mlflow|from mlflow)", re.M)
    pattern_tune = re.compile(r"^\s*(from ray import tune|import ray\.tune|from ray\.tune)", re.M)
    for path in sorted((REPO / "sweeps").glob("*.py")):
        text = path.read_text()
        if pattern_mlflow.search(text):
            assert path.name == "tracking.py", path
        if pattern_tune.search(text):
            assert path.name in TUNE_MODULES, path
    for path in (REPO / "mmsa_core").rglob("*.py"):
        assert not re.search(r"^\s*(import|from) (ray|optuna)\b", path.read_text(), re.M), path


def test_arguments_become_a_sweep_config():
    from sweeps.cli import build_parser, config_from_args

    args = build_parser().parse_args(["--smoke", "--num-samples", "5", "--final-seeds", "7,8,9",
                                      "--set", "batch_size=16", "--gpus-per-trial", "0.25",
                                      "--sampler", "gp", "--name", "x"])
    cfg = config_from_args(args)
    assert cfg.smoke and cfg.num_samples == 5 and cfg.final_seeds == (7, 8, 9)
    assert cfg.text_encoder == "tiny" and cfg.base_run_config().batch_size == 16
    assert cfg.runtime.gpus_per_trial == 0.25 and cfg.sampler == "gp" and cfg.name == "x"
    assert cfg.runtime.max_failures == 1  # --smoke's, unless given
    assert config_from_args(build_parser().parse_args(["--smoke", "--max-failures", "3"])).runtime.max_failures == 3
    plain = config_from_args(build_parser().parse_args([]))
    assert not plain.smoke and plain.text_encoder == "minilm" and plain.num_samples == 32


def _run(args, tmp_path, env=None):
    return subprocess.run([sys.executable, "sweeps/hscl.py", *args,
                           "--storage-path", str(tmp_path / "runs")], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=env)


def test_bad_configuration_exits_2_with_the_message(tmp_path):
    out = _run(["--set", "omegaa=1"], tmp_path)
    assert out.returncode == 2 and "unknown configuration field" in out.stderr
    assert "hscl.omega1" in out.stderr  # names the valid fields
    out = _run(["--gpus-per-trial", "0.3"], tmp_path)
    assert out.returncode == 2 and "divide one GPU" in out.stderr


def test_bad_data_file_fails_before_anything_is_launched_or_recorded(tmp_path):
    bad = tmp_path / "broken.pkl"
    with open(bad, "wb") as f:  # a train split only, with mismatched lengths
        pickle.dump({"train": {"id": np.array(["a$_$1"]), "raw_text": np.array(["x"]),
                               "audio": np.zeros((2, 3, 5), np.float32),
                               "vision": np.zeros((1, 3, 20), np.float32),
                               "regression_labels": np.array([np.nan], np.float32)}}, f)
    out = _run(["--smoke", "--data", str(bad)], tmp_path)
    assert out.returncode == 2, out.stderr[-3000:]
    assert "broken.pkl" in out.stderr and "valid" in out.stderr  # the validator's full message
    assert "Traceback" not in out.stderr
    runs = tmp_path / "runs"
    assert not (runs / "mlflow.db").exists()
    assert not any(p.is_dir() for p in runs.iterdir())  # no sweep directory
    assert "Started a local Ray" not in out.stderr + out.stdout


def test_missing_data_file_fails_before_launch(tmp_path):
    out = _run(["--smoke", "--data", str(tmp_path / "nope.pkl")], tmp_path)
    assert out.returncode == 2 and "nope.pkl" in out.stderr and "Traceback" not in out.stderr



def test_every_registered_method_has_its_sweep_entry():
    for method in method_names():
        entry = REPO / "sweeps" / f"{method}.py"
        assert entry.is_file(), f"no sweep entry sweeps/{method}.py"
        assert f'default_method="{method}"' in entry.read_text()
