"""Helpers for the ablation runner tests: an isolated environment, CLI runs, MLflow reads.

Each Ray test runs `python ablations/run.py` in its own process session with HOME (Ray's auth
token), RAY_TMPDIR and the MLflow store in temporary directories, and afterwards kills what is left
of that session by PID — never by process name: other people's Ray clusters share the machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.processes import run_in_session

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def ablation_env(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    ray_tmp = tempfile.mkdtemp(prefix="ra", dir="/tmp")  # Ray's socket paths must stay short
    env = dict(os.environ)
    env.update(HOME=str(home), RAY_TMPDIR=ray_tmp, RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1",
               TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S="0")
    for key in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "RAY_AUTH_TOKEN_PATH"):
        env.pop(key, None)
    yield env
    shutil.rmtree(ray_tmp, ignore_errors=True)


def run_cli(args: list[str], env: dict, *, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python ablations/run.py ARGS` from the repository root, in its own process session."""
    cmd = [sys.executable, "ablations/run.py", *args]
    code, out = run_in_session(cmd, cwd=REPO, env=env, timeout=timeout, what="ablation run")
    return subprocess.CompletedProcess(cmd, code, out, "")


def study_runs(uri: str, study: str, dataset: str = "synthetic-mosi"):
    """(parent run, children) of an ablation study, read with a plain MLflow client."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(f"mmsa-{dataset}")
    assert exp is not None, f"no experiment mmsa-{dataset}"
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.sweep_name = '{study}'",
                              max_results=1000)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in parents]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    return client, parents[0], children
