"""The fault matrix's one shared ending: `check_nothing_lost`.

Every test in `tests/faults/` injects one fault, lets the sweep (or its refusal to start) play out,
then calls `check_nothing_lost` — either on a finished sweep (``num_samples`` > 0) or on a sweep
that must not have started at all (``num_samples=0``). The sweep fixtures (`sweep_env`, …) are
those of `tests/sweeps/conftest.py`.
"""

from __future__ import annotations

import glob
import json
import math
import os
from collections import Counter
from pathlib import Path

from tests.sweeps.conftest import journal_trials, store, sweep_env  # noqa: F401  (a fixture)

# the per-epoch metrics of the MLflow contract whose history must be whole
EPOCH_KEYS = ("train/loss", "valid/mae", "test/mae", "valid/acc2_non0")


def check_nothing_lost(uri: str, sweep_dir: str | Path, *, name: str, num_samples: int,
                       seeds: list[int] = (), failed: int = 0, ray_tmpdir: str | None = None):
    """Nothing lost, nothing invented, every status true. Returns (client, search runs).

    ``num_samples=0``: the sweep was refused before it started — no sweep state, no Ray session
    (when ``ray_tmpdir`` is given), and no MLflow run in a local store.

    Otherwise (a finished sweep), on top of `tests.sweeps.test_ray_sweeps.check_sweep` (the MLflow
    contract; exactly ``num_samples`` search trials and one final run per seed; ``failed`` FAILED,
    the rest FINISHED; the Optuna journal):
    - no run of the experiment is left RUNNING, parent included;
    - each trial has exactly one run (unique ``run_key`` under the parent, nothing deleted is
      needed to make that so);
    - per run and metric, no duplicate step and no gap: the steps are 1..n, n >= the epoch of the
      run's last checkpoint, and a FINISHED run has n = ``epochs_run``;
    - the Optuna study agrees with Tune and MLflow: one COMPLETE trial per FINISHED search run
      with the run's ``best/valid/mae`` as its value, one FAIL per FAILED one.
    """
    sweep_dir = Path(sweep_dir)
    if num_samples == 0:
        assert not (sweep_dir / "sweep.json").exists(), f"{sweep_dir} was started"
        assert not glob.glob(str(sweep_dir / "*" / "trial_*")), "trials were launched"
        if ray_tmpdir is not None:
            assert not glob.glob(os.path.join(ray_tmpdir, "**", "session_*"), recursive=True), \
                "Ray was started"
        if uri.startswith("sqlite:///") and os.path.exists(uri[len("sqlite:///"):]):
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=uri)
            exps = [e.experiment_id for e in client.search_experiments()]
            assert not client.search_runs(exps), "runs were recorded"
        return None, []

    from tests.sweeps.test_ray_sweeps import check_sweep

    client, search = check_sweep(uri, str(sweep_dir), name=name, num_samples=num_samples,
                                 seeds=list(seeds), failed=failed)
    _, parents, all_search, final = store(uri)
    parent = [p for p in parents if p.data.tags["sweep_name"] == name][0]
    children = [r for r in all_search + final if r.data.tags["mlflow.parentRunId"] == parent.info.run_id]
    exp = parent.info.experiment_id
    running = [r.info.run_id for r in client.search_runs([exp], max_results=1000)
               if r.info.status == "RUNNING"]
    assert not running, f"runs left RUNNING: {running}"
    keys = Counter(r.data.tags["run_key"] for r in children)
    assert all(n == 1 for n in keys.values()), f"trials with several runs: {keys}"
    assert len(children) == num_samples + len(seeds)

    last_ckpt = _last_checkpoint_epochs(sweep_dir)
    for run in children:
        for key in EPOCH_KEYS:
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            if not steps and run.info.status == "FAILED":
                continue  # failed before its first epoch was logged
            assert len(steps) == len(set(steps)), f"{run.data.tags['run_key']} {key}: duplicate steps {steps}"
            assert sorted(steps) == list(range(1, len(steps) + 1)), \
                f"{run.data.tags['run_key']} {key}: gaps in steps {sorted(steps)}"
            assert len(steps) >= last_ckpt.get(run.info.run_id, 0), \
                f"{run.data.tags['run_key']} {key}: steps {steps} end before its last checkpoint"
            if run.info.status == "FINISHED":
                assert len(steps) == int(run.data.metrics["epochs_run"]), (key, steps)

    _, trials = journal_trials(sweep_dir / "optuna_journal.log")
    states = Counter(t.state.name for t in trials)
    mine = [r for r in children if r.data.tags["stage"] == "search"]
    assert states["COMPLETE"] == sum(r.info.status == "FINISHED" for r in mine)
    assert states["FAIL"] == sum(r.info.status == "FAILED" for r in mine), states
    values = sorted(t.value for t in trials if t.state.name == "COMPLETE")
    expected = sorted(r.data.metrics["best/valid/mae"] for r in mine if r.info.status == "FINISHED")
    assert all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(values, expected, strict=True)), \
        (values, expected)
    return client, search


def _last_checkpoint_epochs(sweep_dir: Path) -> dict[str, int]:
    """MLflow run id -> the epoch of the latest checkpoint Tune kept for it (any stage)."""
    out: dict[str, int] = {}
    for meta in glob.glob(str(sweep_dir / "*" / "trial_*" / "checkpoint_*" / "sweep_meta.json")):
        m = json.loads(Path(meta).read_text())
        out[m["run_id"]] = max(out.get(m["run_id"], 0), int(m["epoch"]))
    return out
