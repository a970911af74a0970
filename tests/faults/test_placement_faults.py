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
            "--tracking-uri", f"sqlite:///{runs}/mlflow.db", "--max-epochs", "1", "--final-seeds", "1111",
            "--rerank-top", "0"]


def _most_at_once(spans: list[tuple[int, int]]) -> int:
    """The most of these (start, end) intervals that overlap at one moment."""
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans], key=lambda e: (e[0], e[1]))
    now = most = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def test_fake_gpus_pack_two_trials_each_and_a_trial_killed_in_set_up_fails_alone(sweep_env, tmp_path):
    """One sweep, two checks (one Ray start saves CI a minute):

    Packing: 4 search trials of 0.5 GPU, 0.5 CPU and 1 GB memory (``--memory-per-trial 1``: Ray's
    ``memory`` resource; the console's header names the shape) on a 2-GPU, 2-CPU Ray, ``device=cpu``
    set explicitly. Each trial is given one GPU id and its process sees exactly that id in
    ``CUDA_VISIBLE_DEVICES``; trials trained at the same time, and no GPU ever held more than two at
    once; every run records the device it trained on (cpu, as asked) and its node. When a trial held
    its GPU is read from its own record: its run's start to its last epoch's timestamp (both inside
    its hold). Which GPU a second concurrent trial gets is Ray's choice (observed: the same GPU in two
    runs, the other GPU in a third), so the test asserts the capacity, not the choice.

    A worker killed for memory: one search trial's worker is SIGKILLed during its set-up (its MLflow
    run open, before training — where a worker killed for memory dies) in every attempt: it is retried
    once (``--max-failures 1``), then FAILED with the dead actor named; the other trials and the later
    stages FINISH and the sweep exits 0."""
    runs = tmp_path / "runs"
    uri = f"sqlite:///{runs}/mlflow.db"
    marker = tmp_path / "oom"
    out = run_cli([*_args(runs, "pack"), "--num-samples", "4", "--gpus-per-trial", "0.5", "--cpus-per-trial",
                   "0.5", "--memory-per-trial", "1", "--max-failures", "1", "--set", "device=cpu", "--inject-fault",
                   f"trial=*,epoch=0,times=-1,kind=kill,marker={marker}"], sweep_env, log=tmp_path / "sweep.log")
    assert out.returncode == 0, out.stdout[-5000:]
    assert "0.5 CPU + 0.5 GPU + 1 GB memory per trial" in out.stdout
    client, search = check_nothing_lost(uri, runs / "pack", name="pack", num_samples=4, seeds=[1111], failed=1)
    killed = [r for r in search if r.data.tags["run_key"] == (marker / "claimed-by").read_text()][0]
    assert killed.info.status == "FAILED" and "actor" in killed.data.tags["error"].lower()
    assert sorted(p.name for p in marker.glob("attempt-*")) == ["attempt-0", "attempt-1"]  # tried twice
    assert client.get_metric_history(killed.info.run_id, "valid/mae") == []  # killed before its first epoch
    assert all(r.info.status == "FINISHED" for r in search if r is not killed)
    _, _, search, final = store(uri)
    spans: dict[str, list[tuple[int, int]]] = {}
    every: list[tuple[int, int]] = []
    for run in search + final:
        tags = run.data.tags
        assert tags["ray_gpu_ids"] in ("0", "1"), tags.get("ray_gpu_ids")
        assert tags["cuda_visible_devices"] == tags["ray_gpu_ids"]
        assert tags["train_device"] == "cpu" and tags["train_device_name"].startswith("CPU")
        assert float(tags["train_device_memory_gb"]) > 0
        assert tags["ray_node_id"] and tags["node_hostname"]
        history = client.get_metric_history(run.info.run_id, "valid/mae")
        if history:  # the killed trial trained no epoch
            span = (run.info.start_time, max(m.timestamp for m in history))
            spans.setdefault(tags["ray_gpu_ids"], []).append(span)
            every.append(span)
    at_once = {gpu: _most_at_once(s) for gpu, s in spans.items()}
    assert max(at_once.values()) <= 2, at_once  # never more than two half-GPU trials on one GPU
    assert _most_at_once(every) >= 2  # trials did train at the same time


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

