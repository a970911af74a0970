"""Faults during a robustness study and an ablation study, not only a sweep (real local Ray, real
SQLite store; `slow`). Each ends with the study's own "nothing lost" check, `check_study`."""

from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
from collections import Counter

import pytest

from tests.processes import kill_session, run_in_session
from tests.sweeps.conftest import wait_for

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["--set", "synthetic_train=64", "--set", "synthetic_valid=32", "--set", "synthetic_test=32"]


def check_study(uri: str, name: str, *, keys: set[str], epochs: int, masked: list[str] = ()):
    """Exactly one run per expected key under the study's parent, all FINISHED with every epoch
    (steps 1..epochs, no duplicate), nothing RUNNING, the parent FINISHED; `masked` metrics present."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exps = [e.experiment_id for e in client.search_experiments()]
    everything = client.search_runs(exps, max_results=1000)
    assert not [r.info.run_name for r in everything if r.info.status == "RUNNING"]
    parents = [r for r in everything if r.data.tags.get("sweep_name") == name
               and "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED", [p.info.status for p in parents]
    kids = [r for r in everything if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    counts = Counter(r.data.tags["run_key"] for r in kids)
    assert set(counts) == keys and set(counts.values()) == {1}, counts
    for run in kids:
        assert run.info.status == "FINISHED", (run.data.tags["run_key"], run.info.status)
        assert int(run.data.metrics["epochs_run"]) == epochs, run.data.tags["run_key"]
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "valid/mae")]
        assert steps == list(range(1, epochs + 1)), (run.data.tags["run_key"], steps)
        for key in masked:
            assert key in run.data.metrics, (run.data.tags["run_key"], key)
    return client, kids


def _start_then_sigint(cmd, env, log, checkpoints_glob):
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_for(lambda: glob.glob(checkpoints_glob), 300, "a first trial checkpoint")
        os.kill(proc.pid, signal.SIGINT)
        return proc.wait(180)
    finally:
        kill_session(proc.pid)


def _interrupted_state(uri: str, name: str, epochs: int):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exps = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(exps, max_results=1000)
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    parent = [r for r in runs if r.data.tags.get("sweep_name") == name and "mlflow.parentRunId" not in r.data.tags]
    assert parent and parent[0].info.status == "KILLED"
    kids = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent[0].info.run_id]
    cut = [r for r in kids if r.info.status == "FINISHED" and int(r.data.metrics.get("epochs_run", 0)) < epochs]
    assert not cut, "an interrupted run was recorded FINISHED with its epochs cut short"
    assert any(r.info.status == "KILLED" for r in kids), [r.info.status for r in kids]


def test_driver_sigint_mid_robustness_study_leaves_no_cut_short_run_and_resumes(sweep_env, tmp_path):
    """(driver SIGINT, robustness study) Ctrl-C while the first (method, seed) trains: exit 130, the
    parent KILLED, nothing RUNNING, the interrupted run KILLED — never FINISHED with fewer epochs
    (Ray 2.60 ends every trial TERMINATED on Ctrl-C; before `sweeps.interrupts` that run was
    recorded FINISHED, ``stop_reason=scheduler``, and the re-run skipped it). The same command then
    trains what is left: one FINISHED run per (method, seed) with all 3 epochs and its masked metrics."""

    storage = tmp_path / "runs"
    uri = f"sqlite:///{storage}/mlflow.db"
    cmd = [sys.executable, "ablations/robustness.py", "--methods", "hscl", "--seeds", "1,2", "--rates", "0,1",
           "--smoke", "--set", "max_epochs=3", "--set", "patience=3", *TINY, "--storage-path", str(storage),
           "--num-cpus", "2", "--cpus-per-trial", "2", "--name", "rob-int"]
    rc = _start_then_sigint(cmd, sweep_env, tmp_path / "first.log",
                            str(storage / "robustness" / "rob-int" / "grid-*" / "trial_*" / "checkpoint_*"))
    assert rc == 130, (tmp_path / "first.log").read_text()[-4000:]
    _interrupted_state(uri, "rob-int", 3)
    code, out = run_in_session(cmd, cwd=REPO, env=sweep_env, timeout=900, what="the resumed study")
    assert code == 0, out[-4000:]
    check_study(uri, "rob-int", keys={"hscl-seed1", "hscl-seed2"}, epochs=3,
                masked=[f"robust/tokens-tav/r{r:.2f}/test/mae" for r in (0.0, 1.0)]
                + [f"robust/absent-{a}/test/mae" for a in ("a", "v", "av")])


def test_driver_sigint_mid_ablation_leaves_no_cut_short_run_and_resumes(sweep_env, tmp_path):
    """(driver SIGINT, ablation study) the same for `ablations/run.py`: exit 130, parent KILLED, no
    run FINISHED short of its epochs; the re-run finishes every (variant, seed) exactly once."""
    storage = tmp_path / "runs"
    uri = f"sqlite:///{storage}/mlflow.db"
    cmd = [sys.executable, "ablations/run.py", "quickstart", "--seeds", "1111", "--variants", "full,text_only",
           "--max-epochs", "3", "--no-robustness", *TINY,
           "--storage-path", str(storage), "--num-cpus", "2", "--cpus-per-trial", "2"]
    rc = _start_then_sigint(cmd, sweep_env, tmp_path / "first.log",
                            str(storage / "ablations" / "quickstart" / "grid-*" / "trial_*" / "checkpoint_*"))
    assert rc == 130, (tmp_path / "first.log").read_text()[-4000:]
    _interrupted_state(uri, "quickstart", 3)
    code, out = run_in_session(cmd, cwd=REPO, env=sweep_env, timeout=900, what="the resumed ablation")
    assert code == 0, out[-4000:]
    check_study(uri, "quickstart", keys={f"{v}-seed1111" for v in ("full", "text_only")}, epochs=3)
