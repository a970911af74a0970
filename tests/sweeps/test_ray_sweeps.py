"""Real local Ray, real MLflow stores: the sweep's "done when" checks (all `slow`).

Each test runs `python sweeps/hscl.py --smoke ...` (tiny encoder, small synthetic data) in its own
process session on a 2-CPU local Ray, then reads the MLflow store and the Optuna journal.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess

import pytest

from mmsa_core.config import RunConfig
from sweeps.resume_state import load_snapshot
from tests.processes import kill_session
from tests.sweeps.conftest import REPO, journal_trials, pickled_project_names, run_cli, store, wait_for

pytestmark = pytest.mark.slow
SMOKE = ["--smoke", "--num-cpus", "2"]
SEARCHED = ("hscl.omega1", "hscl.omega2", "hscl.alpha", "hscl.tau")


def check_sweep(uri: str, sweep_dir: str, *, name: str, num_samples: int, seeds: list[int],
                failed: int = 0):
    """The MLflow contract and the journal of one finished sweep; returns (client, search runs)."""
    client, parents, search, final = store(uri)
    parents = [p for p in parents if p.data.tags["sweep_name"] == name]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    tags = parent.data.tags
    for key in ("method", "dataset", "sampler", "sampler_seed", "code_version", "config_hash"):
        assert tags.get(key), key
    assert tags["kind"] == "sweep" and tags["method"] == "hscl" and tags["dataset"] == "synthetic-mosi"
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"search_space.json", "best_config.json", "final_summary.json"} <= artifacts
    search = [r for r in search if r.data.tags["mlflow.parentRunId"] == parent.info.run_id]
    final = [r for r in final if r.data.tags["mlflow.parentRunId"] == parent.info.run_id]
    assert len(search) == num_samples
    assert sorted(int(r.data.tags["seed"]) for r in final) == sorted(seeds)
    statuses = [r.info.status for r in search + final]
    assert statuses.count("FAILED") == failed and statuses.count("FINISHED") == len(statuses) - failed
    assert len({r.data.tags["trial_id"] for r in search}) == num_samples
    configs = {tuple(r.data.params[k] for k in SEARCHED) for r in search}
    assert len(configs) == num_samples  # no configuration asked twice
    for run in search + final:
        t = run.data.tags
        assert t["sweep_name"] == name and t["method"] == "hscl" and "run_key" in t
        if run.info.status == "FINISHED":
            assert t["stopped_early"] in ("true", "false") and t["stop_reason"]
            m = run.data.metrics
            for key in ("valid/mae", "test/mae", "train/loss", "best/valid/mae", "best/test/mae",
                        "best/test/acc2_non0", "best_epoch", "epochs_run"):
                assert key in m, key
        assert set(run.data.params) == set(RunConfig.paper("hscl").keys()) and run.data.params["text_encoder"] == "tiny"
    for run in final:  # the final stage has no scheduler: every seed runs all epochs
        assert run.data.tags["stop_reason"] in ("max_epochs", "patience")
        assert run.data.params["hscl.omega1"] == final[0].data.params["hscl.omega1"]
    # the Optuna journal holds every trial, each finished
    study_name, trials = journal_trials(os.path.join(sweep_dir, "optuna_journal.log"))
    assert study_name == tags["study_name"]
    assert [t.state.name for t in trials].count("RUNNING") == 0
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == num_samples - failed
    assert {tuple(str(t.params[k]) for k in SEARCHED) for t in trials if t.state.name != "FAIL"} <= configs
    best = json.loads(open(os.path.join(sweep_dir, "best_config.json")).read())
    search_best = json.loads(open(os.path.join(sweep_dir, "search_result.json")).read())["candidates"][0]
    assert search_best["objective"] == min(t.value for t in complete)
    assert best["trial_id"] in {c["trial_id"] for c in best.get("rerank") or [search_best]}
    # every Optuna trial names its Tune trial, its MLflow run and its fidelity (user attributes)
    run_ids = {r.data.tags["trial_id"]: r.info.run_id for r in search}
    for t in complete:
        attrs = t.user_attrs
        assert run_ids[attrs["tune_trial_id"]] == attrs["mlflow_run_id"], attrs
        assert 1 <= attrs["epochs_run"] and isinstance(attrs["stopped_by_asha"], bool)
    # a finished stage keeps one checkpoint per trial (two while it runs)
    for stage in ("search", "final"):
        for trial in glob.glob(os.path.join(sweep_dir, stage, "trial_*")):
            assert len(glob.glob(os.path.join(trial, "checkpoint_*"))) <= 1, trial
    assert glob.glob(os.path.join(sweep_dir, "final", "trial_*", "checkpoint_*"))
    return client, search


def test_faulty_trials_are_retried_or_failed_and_the_sweep_finishes(sweep_env, tmp_path):
    """One trial raises once (retried from its checkpoint), one always (FAILED with the error)."""
    runs = tmp_path / "runs"
    uri = f"sqlite:///{runs}/mlflow.db"
    fault = (f"trial=*,epoch=1,times=-1,marker={tmp_path}/always;"
             f"trial=*,epoch=2,times=1,marker={tmp_path}/once")
    out = run_cli([*SMOKE, "--name", "faulty", "--storage-path", str(runs), "--tracking-uri", uri,
                   "--asha-grace-period", "3", "--final-seeds", "1111", "--max-failures", "1",
                   "--inject-fault", fault], sweep_env, log=tmp_path / "log.txt")
    assert out.returncode == 0, out.stdout[-5000:]
    client, search = check_sweep(uri, str(runs / "faulty"), name="faulty", num_samples=3,
                                 seeds=[1111], failed=1)
    failed = [r for r in search if r.info.status == "FAILED"]
    assert "InjectedFault" in failed[0].data.tags["error"]
    assert failed[0].data.tags["trial_id"] == open(tmp_path / "always" / "claimed-by").read()
    retried_key = open(tmp_path / "once" / "claimed-by").read()
    retried = [r for r in search if r.data.tags["run_key"] == retried_key][0]
    assert retried.info.status == "FINISHED"
    assert retried.data.tags["resumed_from_epoch"] == "1"  # restarted from its epoch-1 checkpoint
    steps = [m.step for m in client.get_metric_history(retried.info.run_id, "valid/mae")]
    assert steps == [1, 2, 3]
    # what Tune pickled of both stages names only the documented on-disk format (sweeps.tune_objects)
    from sweeps.tune_objects import PICKLED_NAMES

    import importlib

    def is_exception(name):  # a failed trial's error is pickled too (documented in tune_objects)
        module, _, attr = name.rpartition(".")
        obj = getattr(importlib.import_module(module), attr)
        return isinstance(obj, type) and issubclass(obj, BaseException)

    pickled = pickled_project_names(runs / "faulty")
    assert "sweeps.faults.InjectedFault" in pickled  # the always-failing trial's error
    assert pickled and {n for n in pickled if not is_exception(n)} <= PICKLED_NAMES, pickled - PICKLED_NAMES
    assert "sweeps.tune_objects.JournalSafeOptunaSearch" in pickled and "sweeps.tune_objects.trial_dirname" in pickled


def _start_and_signal(args, env, log, checkpoints_glob, sig, seen=()):
    """Start the sweep, wait for a new search checkpoint, send `sig` to the driver; return rc."""
    proc = subprocess.Popen(["python", "sweeps/hscl.py", *args], cwd=REPO, env=env,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: set(glob.glob(checkpoints_glob)) - set(seen), 240, "a new search checkpoint")
        os.kill(proc.pid, sig)
        return proc.wait(120)
    finally:
        kill_session(proc.pid)  # the driver's orphaned Ray processes, by PID


def test_interrupted_and_killed_driver_resumes_with_no_trial_lost_or_repeated(sweep_env, tmp_path):
    """Ctrl-C, then SIGKILL mid-search; each re-run of the same command continues the sweep."""
    runs = tmp_path / "runs"
    uri = f"sqlite:///{runs}/mlflow.db"
    args = [*SMOKE, "--name", "killed", "--num-samples", "4", "--storage-path", str(runs),
            "--tracking-uri", uri, "--final-seeds", "1111"]
    ckpts = str(runs / "killed" / "search" / "trial_*" / "checkpoint_*")

    # 1. Ctrl-C: Tune saves its state and stops; the sweep exits 130, nothing left RUNNING, and
    #    no interrupted trial is reported FINISHED.
    rc = _start_and_signal(args, sweep_env, tmp_path / "first.log", ckpts, signal.SIGINT)
    assert rc == 130, (tmp_path / "first.log").read_text()[-3000:]
    client, parents, search, _ = store(uri)
    assert parents[0].info.status == "KILLED"
    assert not [r for r in search if r.info.status == "RUNNING"]
    ended = {r.info.run_id: r.data.metrics.get("epochs_run") for r in search if r.info.status == "FINISHED"}

    # 2. SIGKILL: nothing is saved on the way out; runs stay RUNNING until the re-run.
    seen = glob.glob(ckpts)
    _start_and_signal(args, sweep_env, tmp_path / "second.log", ckpts, signal.SIGKILL, seen)
    assert json.loads((runs / "killed" / "sweep.json").read_text())["stages_done"] == []
    #    A kill can land mid-upload of Tune's state: CI once found a 0-byte tuner.pkl after this
    #    step. Cut it as such a kill does; the re-run puts back the driver's snapshot of it.
    #    (Truncated session files, restored one save behind, are covered in test_resume_state.)
    search_dir = runs / "killed" / "search"
    assert "tuner.pkl" in load_snapshot(str(search_dir))
    (search_dir / "tuner.pkl").write_bytes(b"")

    # 3. the same command finishes the sweep
    out = run_cli(args, sweep_env, log=tmp_path / "third.log")
    assert out.returncode == 0, out.stdout[-5000:]
    assert "resuming the search stage" in out.stdout
    assert "tuner.pkl was truncated (a driver killed mid-upload); put back its copy" in out.stdout
    client, search = check_sweep(uri, str(runs / "killed"), name="killed", num_samples=4, seeds=[1111])
    for run in search:  # trials that had ended before the Ctrl-C were not run again
        if run.info.run_id in ended:
            assert run.data.metrics.get("epochs_run") == ended[run.info.run_id]
            assert "resumed_from_epoch" not in run.data.tags

    # 4. a finished sweep is not run again
    out = run_cli(args, sweep_env, log=tmp_path / "fourth.log")
    assert out.returncode == 0
    check_sweep(uri, str(runs / "killed"), name="killed", num_samples=4, seeds=[1111])


# The job path (`ray start --head` + `ray job submit --working-dir .` of a smoke sweep, then the store)
# is tests/faults/test_ray_token_auth.py (a head with token auth, Ray 2.60's default); a sweep against
# a real `mlflow server` (HTTP, proxied artifacts) is each test of tests/faults/test_mlflow_faults.py
# and tests/faults/test_mlflow_basic_auth.py.


def _children(uri: str, name: str, stage: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("mmsa-synthetic-mosi")
    parent = client.search_runs([exp.experiment_id], filter_string=f"tags.kind = 'sweep' AND tags.sweep_name = '{name}'")[0]
    kids = client.search_runs([exp.experiment_id], max_results=1000, filter_string=(
        f"tags.`mlflow.parentRunId` = '{parent.info.run_id}' AND tags.stage = '{stage}'"))
    return client, parent, kids


def test_the_rerank_stage_records_its_runs_and_resumes_after_an_interrupt(sweep_env, tmp_path):
    """--rerank-top 2 --rerank-seeds 2: Ctrl-C while the re-rank stage trains, then the same command
    finishes it — 4 rerank runs, each FINISHED once with every epoch; the optimism on the parent."""
    runs = tmp_path / "runs"
    uri = f"sqlite:///{runs}/mlflow.db"
    args = [*SMOKE, "--name", "rr", "--rerank-top", "2", "--rerank-seeds", "2", "--final-seeds", "1111",
            "--storage-path", str(runs), "--tracking-uri", uri]
    rc = _start_and_signal(args, sweep_env, tmp_path / "first.log",
                           str(runs / "rr" / "rerank" / "trial_*" / "checkpoint_*"), signal.SIGINT)
    assert rc == 130, (tmp_path / "first.log").read_text()[-3000:]
    assert json.loads((runs / "rr" / "sweep.json").read_text())["stages_done"] == ["search"]
    out = run_cli(args, sweep_env, log=tmp_path / "second.log")
    assert out.returncode == 0, out.stdout[-5000:]
    client, parent, rerank = _children(uri, "rr", "rerank")
    assert parent.info.status == "FINISHED"
    keys = sorted(r.data.tags["run_key"] for r in rerank)
    assert len(keys) == len(set(keys)) == 4 and all(r.info.status == "FINISHED" for r in rerank)
    assert {r.data.tags["seed"] for r in rerank} == {"2111", "2112"}  # new seeds: not the search's nor a final one
    for r in rerank:
        steps = [m.step for m in client.get_metric_history(r.info.run_id, "valid/mae")]
        assert steps == list(range(1, int(r.data.metrics["epochs_run"]) + 1)), (r.data.tags["run_key"], steps)
    m = parent.data.metrics
    assert {"search/best_objective", "rerank/winner_mean", "rerank/winner_std", "rerank/optimism"} <= set(m)
    best = json.loads((runs / "rr" / "best_config.json").read_text())
    assert len(best["rerank"]) == 2 and all(len(row["seeds"]) == 2 for row in best["rerank"])
    winner = min(best["rerank"], key=lambda row: row["mean"])
    assert best["trial_id"] == winner["trial_id"] and m["rerank/winner_mean"] == pytest.approx(winner["mean"])
    assert "re-rank on new seeds" in out.stdout and "optimism: the search's best trial scored" in out.stdout
    # the final stage's best model: logged as safetensors + configuration, loads, and reproduces the
    # test MAE its run logged
    import sys

    from mmsa_core import load_model
    from mmsa_core.metrics import regression_metrics

    model_run = parent.data.tags["best_model_run_id"]
    local = client.download_artifacts(model_run, "model", str(tmp_path))
    assert {"model.safetensors", "config.json", "model.json"} <= set(os.listdir(local))
    loaded = load_model(local)
    from mmsa_core.trainer import load_run_data

    data = load_run_data(loaded.config)
    pred, labels = loaded.predict(data.splits["test"])
    logged = client.get_run(model_run).data.metrics["best/test/mae"]
    assert abs(regression_metrics(pred, labels)["mae"] - logged) < 1e-6
    cli = subprocess.run([sys.executable, "-m", "mmsa_core.predict", "--model", local, "--output",
                          str(tmp_path / "pred.csv")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0 and f"(now {logged:.6f})" in cli.stdout, cli.stdout + cli.stderr
    assert json.loads((runs / "rr" / "sweep.json").read_text())["stages_done"] == ["search", "rerank", "final"]
    # the report: a smoke banner on its first screen, the re-rank table and its optimism (the parent's metric)
    rep = subprocess.run([sys.executable, "-m", "reports", "--tracking-uri", uri, "--sweep", "rr",
                          "--out", str(tmp_path / "report")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    md = (tmp_path / "report" / "report.md").read_text()
    assert "SMOKE RUN" in md[:3000] and "Re-ranking on new seeds" in md
    assert ("optimistic" in md or "pessimistic" in md) and f"{m['rerank/optimism']:+.4f}" in md  # the winner's row

    # extending the finished sweep: --num-samples 4 (3 before) adds one search trial on the same
    # Optuna study, re-ranks the best two again (what finished is not retrained) and retrains the
    # winner; a new winner's final runs replace the old ones, which stay as stage=superseded
    more = run_cli([*args, "--num-samples", "4"], sweep_env, log=tmp_path / "extend.log")
    assert more.returncode == 0, more.stdout[-5000:]
    state = json.loads((runs / "rr" / "sweep.json").read_text())
    assert state["stages_done"] == ["search", "rerank", "final"] and state["config"]["num_samples"] == 4
    (ext,) = state["extensions"]
    assert ext["stage"] == "search-ext1" and ext["added"] == {"num_samples": 1, "budget_epochs": 0}
    assert ext["from"]["num_samples"] == 3 and ext["previous_winner"] == best["trial_id"]
    client, parent2, search = _children(uri, "rr", "search")
    assert parent2.info.run_id == parent.info.run_id and parent2.info.status == "FINISHED"
    assert len(search) == 4 and all(r.info.status == "FINISHED" for r in search)
    assert len({tuple(r.data.params[k] for k in SEARCHED) for r in search}) == 4  # no configuration twice
    _, trials = journal_trials(runs / "rr" / "optuna_journal.log")
    assert len(trials) == 4 and all(t.state.name == "COMPLETE" for t in trials)  # one study, continued
    assert parent2.data.metrics["search/trials"] == 4
    best2 = json.loads((runs / "rr" / "best_config.json").read_text())
    assert best2["search_trials"] == 4 and len(best2["rerank"]) == 2
    _, _, rerank2 = _children(uri, "rr", "rerank")
    keys2 = [r.data.tags["run_key"] for r in rerank2]
    assert len(keys2) == len(set(keys2)) and set(keys) <= set(keys2) and all(r.info.status == "FINISHED" for r in rerank2)
    for r in rerank2:  # a re-rank run that finished before was not trained again
        if r.data.tags["run_key"] in keys:
            assert len(client.get_metric_history(r.info.run_id, "valid/mae")) == int(r.data.metrics["epochs_run"])
    _, _, final2 = _children(uri, "rr", "final")
    _, _, superseded = _children(uri, "rr", "superseded")
    assert [r.data.tags["source_trial_id"] for r in final2] == [best2["trial_id"]]
    assert parent2.data.tags["best_trial_id"] == best2["trial_id"]
    if best2["trial_id"] == best["trial_id"]:
        assert not superseded and final2[0].data.tags["run_key"] == "final-seed1111"  # not retrained
    else:
        assert [r.data.tags["superseded_stage"] for r in superseded] == ["final"]
        assert final2[0].data.tags["run_key"] == f"final-{best2['trial_id']}-seed1111"
    # lowering it again is refused before anything starts, naming the field
    low = run_cli([*args, "--num-samples", "2"], sweep_env, log=tmp_path / "lower.log")
    assert low.returncode == 2 and "num_samples 4 -> 2" in low.stdout and "Traceback" not in low.stdout


def test_an_epoch_budget_stops_launching_and_buys_trials_with_what_asha_saves(sweep_env, tmp_path):
    """--budget-epochs 12 with trials of up to 3 epochs: the trials' epochs end within one trial of the
    budget, and when ASHA stops trials early the budget buys more than 12 / 3 = 4 of them."""
    runs = tmp_path / "runs"
    uri = f"sqlite:///{runs}/mlflow.db"
    args = [*SMOKE, "--name", "bud", "--num-samples", "30", "--max-epochs", "3",
            "--asha-grace-period", "1", "--asha-reduction-factor", "2", "--rerank-top", "0",
            "--final-seeds", "1111", "--storage-path", str(runs), "--tracking-uri", uri,
            "--keep-checkpoints", "none"]
    out = run_cli([*args, "--budget-epochs", "12"], sweep_env, log=tmp_path / "log.txt")
    assert out.returncode == 0, out.stdout[-5000:]
    _, parent, search = _children(uri, "bud", "search")
    # --keep-checkpoints none: no checkpoint left once the sweep finished, the best model logged before
    assert not list((runs / "bud").glob("*/trial_*/checkpoint_*"))
    assert parent.data.tags.get("best_model_run_id")
    epochs = sum(int(r.data.metrics["epochs_run"]) for r in search)
    assert 12 <= epochs <= 12 + 3, epochs
    assert parent.data.metrics["search/epochs"] == epochs and parent.data.metrics["search/budget_epochs"] == 12
    stopped = [r for r in search if r.data.tags.get("stop_reason") == "scheduler"]
    assert stopped and len(search) > 12 // 3, (len(search), len(stopped))
    assert all(r.info.status == "FINISHED" for r in search) and len(search) < 30

    # a larger budget extends the finished sweep: the search continues on its Optuna study until
    # all trials' epochs reach 18, within one trial's epochs
    out = run_cli([*args, "--budget-epochs", "18"], sweep_env, log=tmp_path / "extend.log")
    assert out.returncode == 0, out.stdout[-5000:]
    _, parent, search2 = _children(uri, "bud", "search")
    epochs2 = sum(int(r.data.metrics["epochs_run"]) for r in search2)
    assert 18 <= epochs2 <= 18 + 3 and len(search2) > len(search), (epochs2, len(search2))
    assert parent.data.metrics["search/epochs"] == epochs2 and parent.data.metrics["search/budget_epochs"] == 18
    assert all(r.info.status == "FINISHED" for r in search2)
    _, trials = journal_trials(runs / "bud" / "optuna_journal.log")
    assert len(trials) == len(search2)
    assert (runs / "bud" / "search-ext1.result.json").exists() and not list((runs / "bud").glob("*/trial_*/checkpoint_*"))
