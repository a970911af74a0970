"""Faults inside running trials (real local Ray, real SQLite MLflow store; all `slow`, each a
small `--smoke` sweep: 2 search trials, 1 final seed). Each ends with `check_nothing_lost`.

The faults come from the test hook ``--inject-fault`` (`sweeps.faults.FaultSpec`): the first trial
to reach the fault's epoch claims it, recorded in ``<marker>/claimed-by``.
"""

from __future__ import annotations

import pytest

from tests.faults.conftest import check_nothing_lost
from tests.sweeps.conftest import run_cli, store

pytestmark = pytest.mark.slow
ARGS = ["--smoke", "--num-cpus", "2", "--num-samples", "2", "--final-seeds", "1111",
        "--asha-grace-period", "3"]


def _sweep(tmp_path, sweep_env, name: str, extra: list[str]):
    runs = tmp_path / "runs"
    uri = f"sqlite:///{runs}/mlflow.db"
    out = run_cli([*ARGS, "--name", name, "--storage-path", str(runs), "--tracking-uri", uri, *extra],
                  sweep_env, log=tmp_path / "sweep.log")
    assert out.returncode == 0, out.stdout[-5000:]
    return uri, runs / name, out


def _claimed(marker) -> str:
    return (marker / "claimed-by").read_text()


def test_hanging_trial_is_stopped_by_the_trial_timeout_and_the_sweep_goes_on(sweep_env, tmp_path):
    """(2) A trial hangs at epoch 2 (every attempt); ``--trial-timeout`` stops it: its run is
    FAILED with ``error`` starting "trial timeout after 30 s" (and ``timeout_reason``), its
    epoch-1 metrics kept; the other trial and the final stage finish; the Optuna study has the
    hung trial as FAIL."""
    marker = tmp_path / "hang"
    uri, sweep_dir, _ = _sweep(tmp_path, sweep_env, "hang", [
        "--max-epochs", "2", "--max-failures", "0", "--trial-timeout", "30",
        "--inject-fault", f"trial=*,epoch=2,times=-1,kind=hang,seconds=3600,marker={marker}"])
    client, search = check_nothing_lost(uri, sweep_dir, name="hang", num_samples=2, seeds=[1111],
                                        failed=1)
    hung = [r for r in search if r.data.tags["run_key"] == _claimed(marker)][0]
    assert hung.info.status == "FAILED"
    assert hung.data.tags["error"].startswith("trial timeout after 30 s")
    assert hung.data.tags["timeout_reason"].startswith("trial timeout after 30 s")
    assert [m.step for m in client.get_metric_history(hung.info.run_id, "valid/mae")] == [1]


def test_worker_killed_mid_trial_is_retried_from_its_checkpoint(sweep_env, tmp_path):
    """(3) The trial's worker process is SIGKILLed at epoch 2 (an OOM kill, a lost node): Tune
    retries the trial from its epoch-1 checkpoint within ``--max-failures``; its one run ends
    FINISHED with every epoch logged once."""
    marker = tmp_path / "kill"
    uri, sweep_dir, _ = _sweep(tmp_path, sweep_env, "kill", [
        "--max-epochs", "3", "--max-failures", "1",
        "--inject-fault", f"trial=*,epoch=2,times=1,kind=kill,marker={marker}"])
    client, search = check_nothing_lost(uri, sweep_dir, name="kill", num_samples=2, seeds=[1111])
    killed = [r for r in search if r.data.tags["run_key"] == _claimed(marker)][0]
    assert killed.info.status == "FINISHED" and killed.data.tags["resumed_from_epoch"] == "1"
    assert [m.step for m in client.get_metric_history(killed.info.run_id, "valid/mae")] == [1, 2, 3]


def test_disk_full_mid_checkpoint_keeps_the_previous_checkpoint_and_resumes(sweep_env, tmp_path):
    """(5) The epoch-2 checkpoint write fails half-way with ENOSPC (a full disk), once: nothing of
    epoch 2 was logged or reported, the epoch-1 checkpoint stays loadable, the retried trial
    resumes from it and finishes; epoch 2 is in MLflow exactly once."""
    marker = tmp_path / "enospc"
    uri, sweep_dir, out = _sweep(tmp_path, sweep_env, "enospc", [
        "--max-epochs", "3", "--max-failures", "1",
        "--inject-fault", f"trial=*,epoch=2,times=1,kind=enospc,marker={marker}"])
    assert "No space left on device (injected" in out.stdout
    client, search = check_nothing_lost(uri, sweep_dir, name="enospc", num_samples=2, seeds=[1111])
    full = [r for r in search if r.data.tags["run_key"] == _claimed(marker)][0]
    assert full.info.status == "FINISHED" and full.data.tags["resumed_from_epoch"] == "1"
    assert [m.step for m in client.get_metric_history(full.info.run_id, "valid/mae")] == [1, 2, 3]
    _, _, _, final = store(uri)
    assert [r.info.status for r in final] == ["FINISHED"]


def test_resources_no_node_can_hold_are_refused_before_any_trial(sweep_env, tmp_path):
    """(invalid resources) ``--gpus-per-trial 1`` on a machine without a GPU: the local Ray starts,
    the sweep sees that no node can hold one trial and exits 2 with a message naming the request and
    the cluster (what to lower), before any trial is launched or any MLflow run recorded."""
    runs = tmp_path / "runs"
    uri = f"sqlite:///{runs}/mlflow.db"
    out = run_cli(["--smoke", "--num-cpus", "2", "--gpus-per-trial", "1", "--name", "gpu", "--storage-path",
                   str(runs), "--tracking-uri", uri], sweep_env, log=tmp_path / "sweep.log")
    assert out.returncode == 2, out.stdout[-3000:]
    assert "no node of the Ray cluster can hold one trial of 1 CPU and 1 GPU" in out.stdout
    assert "--gpus-per-trial" in out.stdout
    check_nothing_lost(uri, runs / "gpu", name="gpu", num_samples=0)
