"""The console a person sees: trial-event lines, stage headers, the closing summary; and (slow) a
real `--smoke` sweep's whole output stays short at `--verbose 1` and is Ray's full one at 2."""

from __future__ import annotations

import io
import os
import re
from types import SimpleNamespace

import pytest

from sweeps import objective as obj
from sweeps.console import TrialConsole, first_error_line, footer, ray_verbosity
from tests.sweeps.conftest import run_cli


def _console(**kw) -> tuple[TrialConsole, io.StringIO]:
    args = dict(stage="search", total=3, resources="1 CPU", metric="mae", mode="min", max_epochs=4,
                searched=["hscl.alpha", "hscl.tau"], verbose=1)
    args.update(kw)
    c = TrialConsole(**args)
    c.stream = io.StringIO()
    return c, c.stream


def _trial(tid: str, config: dict, last: dict | None = None, error_file: str | None = None):
    return SimpleNamespace(trial_id=tid, config=config, last_result=last or {}, error_file=error_file)


def _result(epoch: int, valid: float, best: float, best_epoch: int, **extra) -> dict:
    return {obj.EPOCH: float(epoch), "valid/mae": valid, "best/valid/mae": best,
            "best_epoch": float(best_epoch), **extra}


def test_search_trial_events_one_line_each():
    c, out = _console()
    c.stage_started()
    a = _trial("aaa", {"hscl.alpha": 0.1, "hscl.tau": 0.5, "batch_size": 32, "lr": 0.001})
    b = _trial("bbb", {"hscl.alpha": 0.3, "hscl.tau": 0.7, "batch_size": 32})
    c.trial_started(a)
    c.trial_started(b)
    c.trial_result(a, _result(1, 1.2, 1.2, 1))
    c.trial_result(b, _result(1, 1.3, 1.3, 1))  # not a new best of the stage: no line
    c.trial_result(a, _result(2, 1.1, 1.1, 2))
    a.last_result = _result(4, 1.15, 1.1, 2, **{obj.TRAINER_DONE: 1.0})
    c.trial_completed(a)
    b.last_result = _result(1, 1.3, 1.3, 1)
    c.trial_completed(b)
    lines = out.getvalue().splitlines()
    assert lines[0] == "== search: 3 trial(s), 1 CPU per trial, up to 4 epochs =="
    assert lines[1] == "[search 1/3] trial aaa started: hscl.alpha=0.1 hscl.tau=0.5"  # searched only
    assert lines[2] == "[search 2/3] trial bbb started: hscl.alpha=0.3 hscl.tau=0.7"
    assert lines[3].startswith("[search 1/3] trial aaa epoch 1/4: valid mae 1.2, best 1.2 (epoch 1)")
    assert lines[4].startswith("[search 1/3] trial aaa epoch 2/4: valid mae 1.1, best 1.1 (epoch 2)")
    assert lines[5] == "[search 1/3] trial aaa finished after epoch 4: best valid mae 1.1 at epoch 2"
    assert lines[6] == "[search 2/3] trial bbb stopped by ASHA after epoch 1: best valid mae 1.3 at epoch 1"
    assert len(lines) == 7


def test_patience_verbose_2_epochs_and_failures(tmp_path):
    c, out = _console(stage="final", total=1, searched=[], verbose=2, mode="min")
    run = {"_run": {"key": "final-seed1111", "tags": {"stage": "final", "seed": "1111"}}}
    t = _trial("t1", run)
    c.trial_started(t)
    c.trial_result(t, _result(1, 1.0, 1.0, 1))
    c.trial_result(t, _result(2, 1.4, 1.0, 1))  # every epoch at --verbose 2
    t.last_result = _result(2, 1.4, 1.0, 1, **{obj.TRAINER_DONE: 1.0})
    c.trial_completed(t)
    err = tmp_path / "error.txt"
    err.write_text("Failure # 1 (occurred at 2026-01-01)\nray::ImplicitFunc.train()\nTraceback (most "
                   "recent call last):\n  File \"x.py\", line 1, in f\n    boom()\n"
                   "sweeps.faults.InjectedFault: injected fault in final-seed1111 at epoch 2\n")
    t.error_file = str(err)
    from sweeps.child_status import error_text
    from sweeps.tune_objects import ConsoleCallback

    ConsoleCallback(c).on_trial_error(0, [], t)  # the Tune callback reads the error file
    assert "InjectedFault" in error_text(t)
    lines = out.getvalue().splitlines()
    assert lines[0] == "[final 1/1] final-seed1111 started: seed=1111"
    assert "epoch 2/4: valid mae 1.4, best 1 (epoch 1)" in lines[2]
    assert lines[3] == "[final 1/1] final-seed1111 stopped by patience after epoch 2: best valid mae 1 at epoch 1"
    assert lines[4] == ("[final 1/1] final-seed1111 FAILED: sweeps.faults.InjectedFault: injected fault "
                        "in final-seed1111 at epoch 2")
    t.checkpoint = object()
    c.trial_started(t)  # Tune starts it again (a retry from its checkpoint)
    assert out.getvalue().splitlines()[5] == "[final 1/1] final-seed1111 restarted from its last checkpoint"


def test_the_retry_line_says_where_the_trial_starts_again():
    c, out = _console(stage="final", total=1, searched=[])
    t = _trial("t1", {"_run": {"key": "final-seed1", "tags": {"seed": "1"}}})
    t.checkpoint = None
    c.trial_recovered(t, "RuntimeError: node lost")
    t.checkpoint = object()
    c.trial_recovered(t, "RuntimeError: node lost")
    assert out.getvalue().splitlines() == [
        "[final] final-seed1 failed, retrying from scratch (no checkpoint yet): RuntimeError: node lost",
        "[final] final-seed1 failed, retrying from its last checkpoint: RuntimeError: node lost"]


def test_grid_epochs_are_silent_at_verbose_1_and_the_console_pickles():
    import pickle

    c, out = _console(stage="ablation", total=2, searched=[])
    t = _trial("t1", {"_run": {"key": "ablation-ref-seed1", "tags": {"ablation": "ref", "seed": "1"}}})
    c.trial_result(t, _result(1, 1.0, 1.0, 1))
    assert out.getvalue() == ""
    again = pickle.loads(pickle.dumps(c))
    assert again.stream is None and again.stage == "ablation"


def test_verbosity_mapping_error_line_and_footer(monkeypatch):
    monkeypatch.setenv("RAY_AIR_NEW_OUTPUT", "1")  # ray_verbosity sets it to 0 below 2: restored after
    assert [ray_verbosity(v) for v in (0, 1, 2, 3)] == [0, 0, 2, 3]
    assert ray_verbosity(1) == 0 and os.environ["RAY_AIR_NEW_OUTPUT"] == "0"
    assert ray_verbosity(2) == 2 and "RAY_AIR_NEW_OUTPUT" not in os.environ  # ours, taken back
    assert first_error_line("Traceback (most recent call last):\n  File x\nValueError: bad\n") == "ValueError: bad"
    lines = footer("sqlite:////tmp/x/mlflow.db", "3", journal="/tmp/x/s/optuna_journal.log",
                   reports={"Report": "/tmp/x/report.html"})
    assert lines[0] == "Report:     /tmp/x/report.html"
    assert lines[1] == "MLflow UI:  mlflow ui --backend-store-uri sqlite:////tmp/x/mlflow.db --host 127.0.0.1"
    assert lines[2].endswith("http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning")
    assert lines[3] == "Optuna:     optuna-dashboard /tmp/x/s/optuna_journal.log"


MAX_LINES = 150


@pytest.mark.slow
def test_smoke_output_is_short_and_ends_with_the_commands(sweep_env, tmp_path):
    runs = tmp_path / "runs"
    out = run_cli(["--smoke", "--num-cpus", "2", "--storage-path", str(runs)], sweep_env,
                  log=tmp_path / "sweep.log")
    assert out.returncode == 0, out.stdout[-5000:]
    text = out.stdout
    lines = text.splitlines()
    assert len(lines) <= MAX_LINES, f"{len(lines)} lines:\n{text[-6000:]}"
    # the smoke's tiny-encoder HSCL reserves its measured memory (sweeps.runtime_options)
    assert re.search(r"^== search: 3 trial\(s\), 1 CPU \+ [\d.]+ GB memory per trial, up to 3 epochs", text, re.M)
    assert re.search(r"^== final: 2 trial\(s\)", text, re.M)
    assert len(re.findall(r"^\[search \d/3\] trial \w+ started: ", text, re.M)) == 3
    assert len(re.findall(r"^\[search \d/3\] trial \w+ (finished|stopped by ASHA|stopped by patience) ",
                          text, re.M)) == 3
    assert len(re.findall(r"^\[final \d/2\] final-seed111[12] finished after epoch 3", text, re.M)) == 2
    for noise in ("Checkpoint successfully created", "tensorboard --logdir", "Trial status:",
                  "started with configuration", "╭"):
        assert noise not in text, noise
    uri = f"sqlite:///{runs}/mlflow.db"
    assert f"MLflow UI:  mlflow ui --backend-store-uri {uri} --host 127.0.0.1" in lines[-3]
    assert "#/experiments/" in lines[-2] and "workflowType=machine_learning" in lines[-2]
    assert lines[-1] == f"Optuna:     optuna-dashboard {runs}/hscl-synthetic-mosi/optuna_journal.log"
    assert re.search(r"^  mae +\d\.\d{4} ± \d\.\d{4}$", text, re.M)
    assert "best configuration, searched fields: {" in text


@pytest.mark.slow
def test_verbose_2_gives_rays_own_output(sweep_env, tmp_path):
    out = run_cli(["--smoke", "--num-cpus", "2", "--num-samples", "1", "--max-epochs", "1",
                   "--final-seeds", "1111", "--verbose", "2", "--storage-path", str(tmp_path / "runs")],
                  sweep_env, log=tmp_path / "sweep.log")
    assert out.returncode == 0, out.stdout[-5000:]
    assert "Trial status:" in out.stdout  # Ray Tune's trial table
    assert "Checkpoint successfully created" in out.stdout
    assert "[search 1/1] trial" in out.stdout and "epoch 1/1" in out.stdout  # ours too
