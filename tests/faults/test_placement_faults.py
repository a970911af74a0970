"""GPUs and memory as Ray places trials (real local Ray; two fake GPUs, ``--num-gpus 2``, where GPUs
are placed; real SQLite MLflow store; `slow`).

Fake GPUs are Ray's bookkeeping only: Ray assigns ids and sets ``CUDA_VISIBLE_DEVICES`` per trial,
but there is no CUDA behind them. So the packing test sets ``device=cpu`` explicitly (the one
setting under which a trial holding a GPU share may train without CUDA) and reads what Ray gave
each trial from its MLflow record; the no-CUDA test leaves ``device=auto`` and expects the clear
failure. On a machine with a GPU the ``gpu``-marked tests and benchmarks/gpu_check.sh cover the
real thing.
"""

from __future__ import annotations

import pytest

from tests.faults.conftest import check_nothing_lost
from tests.sweeps.conftest import run_cli, store

pytestmark = pytest.mark.slow


def _args(runs, name: str) -> list[str]:
    return ["--smoke", "--num-cpus", "2", "--num-gpus", "2", "--name", name, "--storage-path", str(runs),
            "--tracking-uri", f"sqlite:///{runs}/mlflow.db", "--max-epochs", "1", "--final-seeds", "1111"]


def _most_at_once(spans: list[tuple[int, int]]) -> int:
    """The most of these (start, end) intervals that overlap at one moment."""
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans], key=lambda e: (e[0], e[1]))
    now = most = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def test_half_a_fake_gpu_per_trial_packs_two_trials_per_gpu(sweep_env, tmp_path):
    """4 search trials of 0.5 GPU (and 0.5 CPU) on a 2-GPU, 2-CPU Ray: each trial is given one GPU id,
    its process sees exactly that id in ``CUDA_VISIBLE_DEVICES``, no GPU ever holds more than two
    trials at once and one GPU did hold two at once (the share is real); every run records the device
    it trained on (cpu, as asked) and its node. When a trial held its GPU is read from its own
    record: from its run's start to its last epoch's timestamp (both inside its hold)."""
    runs = tmp_path / "runs"
    uri = f"sqlite:///{runs}/mlflow.db"
    out = run_cli([*_args(runs, "pack"), "--num-samples", "4", "--gpus-per-trial", "0.5", "--cpus-per-trial",
                   "0.5", "--set", "device=cpu"], sweep_env, log=tmp_path / "sweep.log")
    assert out.returncode == 0, out.stdout[-5000:]
    assert "0.5 CPU + 0.5 GPU + " in out.stdout  # the header names the shape
    client, _ = check_nothing_lost(uri, runs / "pack", name="pack", num_samples=4, seeds=[1111])
    _, _, search, final = store(uri)
    spans: dict[str, list[tuple[int, int]]] = {}
    for run in search + final:
        tags = run.data.tags
        assert tags["ray_gpu_ids"] in ("0", "1"), tags.get("ray_gpu_ids")
        assert tags["cuda_visible_devices"] == tags["ray_gpu_ids"]
        assert tags["train_device"] == "cpu" and tags["train_device_name"].startswith("CPU")
        assert float(tags["train_device_memory_gb"]) > 0
        assert tags["ray_node_id"] and tags["ray_node_ids"] == tags["ray_node_id"] and tags["node_hostname"]
        last = max(m.timestamp for m in client.get_metric_history(run.info.run_id, "valid/mae"))
        spans.setdefault(tags["ray_gpu_ids"], []).append((run.info.start_time, last))
    at_once = {gpu: _most_at_once(s) for gpu, s in spans.items()}
    assert max(at_once.values()) == 2, at_once  # two trials on one GPU at a time, never three


def test_a_gpu_share_without_cuda_ends_the_sweep_with_exit_2_and_the_cause(sweep_env, tmp_path):
    """``--gpus-per-trial 0.5`` with ``device=auto`` where CUDA is absent (fake GPUs): every trial
    fails at its start with the cause and the fix, Tune's log shows it in one line per attempt
    (no traceback), and the sweep exits 2 with the same message — no silent CPU training."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is present: trials would train on it")
    runs = tmp_path / "runs"
    out = run_cli([*_args(runs, "nocuda"), "--num-samples", "2", "--gpus-per-trial", "0.5", "--max-failures", "0"],
                  sweep_env, log=tmp_path / "sweep.log")
    assert out.returncode == 2, out.stdout[-5000:]
    assert ("error: sweep 'nocuda': every search trial failed: this trial was given 0.5 GPU (--gpus-per-trial) "
            "but finds no CUDA device") in out.stdout
    assert "--set device=cpu" in out.stdout and "Traceback" not in out.stdout, out.stdout[-5000:]
    _, parents, search, _ = store(f"sqlite:///{runs}/mlflow.db")
    assert [r.info.status for r in search] == ["FAILED", "FAILED"]
    assert all("finds no CUDA device" in r.data.tags["error"] for r in search)
    assert [p.info.status for p in parents] == ["FAILED"]


def test_a_trial_killed_during_set_up_fails_alone_and_the_sweep_finishes(sweep_env, tmp_path):
    """Memory-aware scheduling and what an OOM kill costs: ``--memory-per-trial 1`` puts Ray's
    ``memory`` resource on each trial (the console's header says so), and one trial's worker is
    SIGKILLed during its set-up — its MLflow run open, before training, where a worker killed for
    memory dies — in every attempt: it is retried once (``--max-failures 1``), then FAILED with the
    dead actor named; the other search trial and the final stage FINISH and the sweep exits 0."""
    runs = tmp_path / "runs"
    marker = tmp_path / "oom"
    uri = f"sqlite:///{runs}/mlflow.db"
    out = run_cli(["--smoke", "--num-cpus", "2", "--num-samples", "2", "--max-epochs", "2", "--final-seeds", "1111",
                   "--max-failures", "1", "--memory-per-trial", "1", "--name", "oom", "--storage-path", str(runs),
                   "--tracking-uri", uri, "--inject-fault", f"trial=*,epoch=0,times=-1,kind=kill,marker={marker}"],
                  sweep_env, log=tmp_path / "sweep.log")
    assert out.returncode == 0, out.stdout[-5000:]
    assert "1 CPU + 1 GB memory per trial" in out.stdout
    client, search = check_nothing_lost(uri, runs / "oom", name="oom", num_samples=2, seeds=[1111], failed=1)
    killed = [r for r in search if r.data.tags["run_key"] == (marker / "claimed-by").read_text()][0]
    assert killed.info.status == "FAILED" and "actor" in killed.data.tags["error"].lower()
    assert sorted(p.name for p in marker.glob("attempt-*")) == ["attempt-0", "attempt-1"]  # tried twice
    assert client.get_metric_history(killed.info.run_id, "valid/mae") == []  # killed before its first epoch
    other = [r for r in search if r is not killed][0]
    assert other.info.status == "FINISHED"
