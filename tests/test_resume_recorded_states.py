"""Sweeps and studies interrupted on b84beb3 resume with today's code, losing and repeating nothing.

`tests/fixtures/interrupted_b84beb3.tar.gz` holds what four commands left behind when Ctrl-C stopped
them at commit b84beb3 (made by `tests/fixtures/make_interrupted_states.py`): a smoke sweep in its
search stage, an ablation study, a robustness study (evaluate protocol) and a method comparison,
each with trials cut mid-way, their Tune state and checkpoints, ``sweep.json``, the Optuna journal,
grid specs and the SQLite MLflow store. Each command is re-run unchanged; it must finish what was
started: every run FINISHED, one run per key, every epoch logged once, runs that had finished before
the interrupt not trained again. All `slow` (real local Ray).
"""

from __future__ import annotations

import json
import shutil
import sys
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from tests.processes import run_in_session

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
ARCHIVE = REPO / "tests" / "fixtures" / "interrupted_b84beb3.tar.gz"
ROOT = Path("/tmp/mmsa-interrupted-states")  # the absolute path the recorded state names
EPOCH_KEYS = ("train/loss", "valid/mae", "test/mae")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """The unpacked fixture (at the path it was recorded under) and its commands."""
    if ROOT.exists():
        shutil.rmtree(ROOT)
    ROOT.mkdir(parents=True)
    with tarfile.open(ARCHIVE) as tar:
        tar.extractall(ROOT, filter="data")
    info = json.loads((ROOT / "commands.json").read_text())
    assert info["root"] == str(ROOT)
    before = _runs(f"sqlite:///{ROOT}/runs/mlflow.db")
    yield info["runs"], before
    shutil.rmtree(ROOT, ignore_errors=True)


def _runs(uri: str) -> dict[str, dict]:
    """run id -> status, tags, metrics of every run in the store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exps = [e.experiment_id for e in client.search_experiments()]
    return {r.info.run_id: {"status": r.info.status, "tags": dict(r.data.tags), "metrics": dict(r.data.metrics)}
            for r in client.search_runs(exps, max_results=5000)}


def _resume(argv, env_dir: Path) -> str:
    import os
    import tempfile

    home = env_dir / "home"
    home.mkdir(exist_ok=True)
    env = dict(os.environ, HOME=str(home), RAY_TMPDIR=tempfile.mkdtemp(prefix="rr", dir="/tmp"),
               RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1",
               TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S="0")
    for key in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID"):
        env.pop(key, None)
    code, out = run_in_session([sys.executable, *argv], cwd=REPO, env=env, timeout=600, what=argv[0])
    assert code == 0, out[-6000:]
    shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)
    return out


def _check_study(name: str, kind: str, expected_keys: set[str], before: dict[str, dict]) -> dict[str, dict]:
    """One FINISHED parent; exactly one FINISHED child per expected key, every epoch once; runs that
    had finished before the interrupt untouched. Returns run key -> child record."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{ROOT}/runs/mlflow.db"
    runs = _runs(uri)
    parents = [(i, r) for i, r in runs.items() if r["tags"].get("sweep_name") == name
               and "mlflow.parentRunId" not in r["tags"]]
    assert len(parents) == 1, parents
    parent_id, parent = parents[0]
    assert parent["tags"]["kind"] == kind and parent["status"] == "FINISHED", parent
    children = {i: r for i, r in runs.items() if r["tags"].get("mlflow.parentRunId") == parent_id}
    keys = Counter(r["tags"]["run_key"] for r in children.values())
    assert set(keys) == expected_keys and all(n == 1 for n in keys.values()), keys
    assert all(r["status"] == "FINISHED" for r in children.values()), \
        {r["tags"]["run_key"]: r["status"] for r in children.values()}
    client = MlflowClient(tracking_uri=uri)
    for run_id, r in children.items():
        for key in EPOCH_KEYS:
            steps = [m.step for m in client.get_metric_history(run_id, key)]
            assert sorted(steps) == list(range(1, int(r["metrics"]["epochs_run"]) + 1)), (r["tags"]["run_key"], key, steps)
        old = before.get(run_id)
        if old is not None and old["status"] == "FINISHED":  # finished before the Ctrl-C: not run again
            assert r["metrics"]["epochs_run"] == old["metrics"]["epochs_run"]
            assert r["tags"].get("resumed_from_epoch") == old["tags"].get("resumed_from_epoch")
    return {r["tags"]["run_key"]: r for r in children.values()}


def test_the_fixture_was_cut_mid_way(recorded):
    runs, before = recorded
    assert all(r["interrupt_rc"] == 130 for r in runs.values())
    assert "RUNNING" not in {r["status"] for r in before.values()}  # Ctrl-C leaves nothing RUNNING
    assert "KILLED" in {r["status"] for r in before.values()}  # ... but trials were cut short


def test_interrupted_sweep_resumes(recorded, tmp_path):
    runs, before = recorded
    out = _resume(runs["sweep"]["argv"], tmp_path)
    assert "resuming the search stage" in out
    children = _check_study("fx-sweep", "sweep", {*_search_keys("fx-sweep"), "final-seed1111", "final-seed1112"},
                            before)
    search = [r for r in children.values() if r["tags"]["stage"] == "search"]
    assert len(search) == 4
    sweep = json.loads((ROOT / "runs" / "fx-sweep" / "sweep.json").read_text())
    assert sweep["stages_done"] == ["search", "final"]


def _search_keys(name: str) -> set[str]:
    runs = _runs(f"sqlite:///{ROOT}/runs/mlflow.db")
    return {r["tags"]["run_key"] for r in runs.values()
            if r["tags"].get("sweep_name") == name and r["tags"].get("stage") == "search"}


def test_interrupted_ablation_resumes(recorded, tmp_path):
    runs, before = recorded
    _resume(runs["ablation"]["argv"], tmp_path)
    keys = {f"{v}-seed{s}" for v in ("full", "text_only", "no_fusion") for s in (1111, 1112)}
    children = _check_study("fx-ablation", "ablation", keys, before)
    for key in ("full-seed1111", "full-seed1112"):  # the reference variant's robustness metrics
        metrics = children[key]["metrics"]
        assert {"robust/stream-av/r0.50/test/mae", "robust/stream-av/r1.00/test/mae"} <= set(metrics), key


def test_interrupted_robustness_study_resumes(recorded, tmp_path):
    runs, before = recorded
    _resume(runs["robustness"]["argv"], tmp_path)
    keys = {f"{m}-seed{s}" for m in ("hscl", "l1") for s in (1, 2)}
    children = _check_study("fx-robustness", "robustness", keys, before)
    for key, run in children.items():
        have = set(run["metrics"])
        want = {f"robust/tokens-tav/r{r:.2f}/test/mae" for r in (0, 0.5, 1)} | \
               {f"robust/absent-{a}/test/mae" for a in ("a", "v", "av")}
        assert want <= have, (key, sorted(want - have))


def test_interrupted_comparison_resumes(recorded, tmp_path):
    runs, before = recorded
    _resume(runs["comparison"]["argv"], tmp_path)
    keys = {f"{m}-seed{s}" for m in ("hscl", "l1") for s in (1111, 1112)}
    _check_study("fx-comparison", "comparison", keys, before)
