"""Helpers for the sweep tests: isolated environments, CLI runs, process clean-up, store reads.

Every Ray test runs `python sweeps/hscl.py` (or `ray start` / `mlflow server`) in its own process
session with HOME, RAY_TMPDIR and MLflow pointed at temporary directories, and afterwards kills
what is left of that session by PID — never by process name, since other people's Ray clusters
may share the machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.processes import run_in_session

REPO = Path(__file__).resolve().parents[2]
DATASET = "synthetic-mosi"


@pytest.fixture
def sweep_env(tmp_path):
    """Environment for a sweep subprocess: temp HOME (Ray's auth token), short RAY_TMPDIR."""
    home = tmp_path / "home"
    home.mkdir()
    ray_tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # socket paths must stay short
    env = dict(os.environ)
    env.update(HOME=str(home), RAY_TMPDIR=ray_tmp, RAY_USAGE_STATS_ENABLED="0",
               MLFLOW_HTTP_REQUEST_MAX_RETRIES="2", MLFLOW_HTTP_REQUEST_TIMEOUT="60",
               PYTHONUNBUFFERED="1", TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S="0")
    for key in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID"):
        env.pop(key, None)
    yield env
    shutil.rmtree(ray_tmp, ignore_errors=True)


def run_cli(args: list[str], env: dict, *, timeout: float = 420, log: Path | None = None) -> subprocess.CompletedProcess:
    """Run `python sweeps/hscl.py ARGS` from the repository root in its own session."""
    cmd = [sys.executable, "sweeps/hscl.py", *args]
    code, out = run_in_session(cmd, cwd=REPO, env=env, timeout=timeout, what="sweep")
    if log is not None:
        log.write_text(out)
    return subprocess.CompletedProcess(cmd, code, out, "")


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def store(uri: str, dataset: str = DATASET):
    """(parents, search children, final children) of the experiment `mmsa-<dataset>`."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(f"mmsa-{dataset}")
    assert exp is not None, f"no experiment mmsa-{dataset} in {uri}"
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("kind") == "sweep"]
    search = [r for r in runs if r.data.tags.get("stage") == "search"]
    final = [r for r in runs if r.data.tags.get("stage") == "final"]
    return client, parents, search, final


def journal_trials(path: Path):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(path)))
    studies = optuna.get_all_study_summaries(storage)
    assert len(studies) == 1, [s.study_name for s in studies]
    return studies[0].study_name, optuna.load_study(study_name=studies[0].study_name, storage=storage).trials


def pickled_project_names(directory: Path) -> set[str]:
    """Every ``module.name`` of this project that the pickles Tune wrote under `directory` refer to
    (``tuner.pkl``, searcher state, and the state files that are pickles under a .json name)."""
    import pickle

    names: set[str] = set()

    class Recording(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            if module.split(".")[0] in ("sweeps", "mmsa_core", "ablations", "reports"):
                names.add(f"{module}.{name}")
            return super().find_class(module, name)

    for path in Path(directory).rglob("*"):
        if not path.is_file() or path.suffix not in (".pkl", ".json") or "checkpoint_" in str(path):
            continue
        with open(path, "rb") as f:
            if f.read(1) != b"\x80":  # not a pickle
                continue
            f.seek(0)
            Recording(f).load()
    return names
