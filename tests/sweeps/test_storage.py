"""`sweeps.storage` on a local path and on an s3:// URI served by a real local moto_server; the
checkpoint lookups on both; the refusals of a URI storage path without its companions (exit 2, one
line, before anything runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sweeps import storage
from sweeps.checkpoints import find_run_checkpoint, newest_trial_checkpoint
from sweeps.state import atomic_write, open_sweep_state, read_json, write_json
from tests.conftest import S3_SECRET

REPO = Path(__file__).resolve().parents[2]


def test_local_paths_are_plain_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert not storage.is_uri("./s3:/bucket/p") and not storage.is_uri("runs/sweeps")
    assert storage.is_uri("s3://bucket/p") and storage.is_uri("gs://b") and storage.is_uri("hdfs://h:1/x")
    assert storage.resolve("runs") == str(tmp_path / "runs")
    assert storage.resolve("~/x") == os.path.expanduser("~/x")
    assert storage.join("/a", "b", "c.json") == "/a/b/c.json"
    assert storage.tune_storage("runs") == {"storage_path": str(tmp_path / "runs")}
    # files are written exactly as before: text through a temporary file and os.replace
    obj = {"b": 1, "a": [1, 2], "n": None}
    write_json(str(tmp_path / "x.json"), obj)
    assert (tmp_path / "x.json").read_bytes() == (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()
    assert not list(tmp_path.glob("*.tmp-*"))
    storage.ensure_dir(str(tmp_path / "d" / "e"))
    atomic_write(str(tmp_path / "d" / "e" / "f.bin"), b"\x00\x01")
    assert storage.read_bytes(str(tmp_path / "d" / "e" / "f.bin")) == b"\x00\x01"
    assert storage.list_files(str(tmp_path / "d"), recursive=True) == [str(tmp_path / "d" / "e" / "f.bin")]
    assert storage.list_files(str(tmp_path / "nope")) == []
    with storage.local_copy(str(tmp_path / "d")) as d:
        assert d == str(tmp_path / "d")
    storage.delete(str(tmp_path / "d"))
    storage.delete(str(tmp_path / "d"))  # nothing there: no error
    assert not storage.exists(str(tmp_path / "d"))


def test_uri_join_keeps_options_and_refuses_secrets():
    base = "s3://bucket/prefix/?endpoint_override=localhost:9000"
    assert storage.resolve(base) == "s3://bucket/prefix?endpoint_override=localhost:9000"
    joined = storage.join(storage.resolve(base), "sweep", "sweep.json")
    assert joined == "s3://bucket/prefix/sweep/sweep.json?endpoint_override=localhost:9000"
    assert storage.dirname(joined) == "s3://bucket/prefix/sweep?endpoint_override=localhost:9000"
    assert storage.basename(joined) == "sweep.json"
    assert storage.relpath(joined, storage.resolve(base)) == "sweep/sweep.json"
    assert storage.uri_problems(base) == []
    assert "environment" in storage.uri_problems("s3://b/p?secret_key=x")[0]


def _checkpoint(base: str, trial: str, n: int, run_id: str, *, meta: bool = True) -> str:
    folder = storage.join(base, "final", trial, f"checkpoint_{n:06d}")
    if not storage.is_uri(folder):
        os.makedirs(folder, exist_ok=True)
    storage.write(storage.join(folder, "trainer_state.pt"), b"weights")
    if meta:
        write_json(storage.join(folder, "sweep_meta.json"), {"run_id": run_id, "epoch": n + 1, "key": "k"})
    return folder


def test_s3_location_end_to_end(s3_env):
    """Every operation against a real S3 server: the same results as on a local path."""
    base = f"s3://{s3_env['bucket']('mmsa-unit')}/prefix"
    storage.ensure_dir(base)
    assert storage.list_files(base) == []  # the probe is gone
    write_json(storage.join(base, "sweep", "best_config.json"), {"x": 1})
    assert read_json(storage.join(base, "sweep", "best_config.json")) == {"x": 1}
    assert storage.exists(storage.join(base, "sweep")) and not storage.exists(storage.join(base, "nope.json"))
    with pytest.raises(FileNotFoundError):
        storage.read_text(storage.join(base, "nope.json"))
    state = open_sweep_state(storage.join(base, "sweep"), name="sweep", config_hash="h1", tracking_uri="sqlite:///x.db")
    again = open_sweep_state(storage.join(base, "sweep"), name="sweep", config_hash="h1", tracking_uri="sqlite:///x.db")
    assert again.study_name == state.study_name
    assert sorted(storage.relpath(f, base) for f in storage.list_files(base, recursive=True)) == [
        "sweep/best_config.json", "sweep/sweep.json"]

    # checkpoints: the latest of a run, found by the run id its sweep_meta.json names; a local copy
    _checkpoint(base, "trial_a", 0, "run-1")
    newest = _checkpoint(base, "trial_a", 1, "run-1")
    _checkpoint(base, "trial_b", 2, "run-2")
    assert find_run_checkpoint(base, "run-1") == newest
    assert find_run_checkpoint(base, "run-3") is None
    with storage.local_copy(newest) as d:
        assert sorted(os.listdir(d)) == ["sweep_meta.json", "trainer_state.pt"]
    storage.delete(storage.join(base, "final"))
    assert find_run_checkpoint(base, "run-1") is None

    # a bucket that does not exist: the error a sweep turns into exit 2 before any trial
    with pytest.raises(OSError):
        storage.ensure_dir("s3://mmsa-no-such-bucket/p")


@pytest.mark.parametrize("where", ["local", "s3"])
def test_restore_onto_a_deleted_checkpoint_falls_back_to_the_newest(where, tmp_path, request, capsys):
    """Tune named checkpoint_000002, which retention deleted before the driver died: the trial resumes
    from checkpoint_000001 (000000 is older; a folder without sweep_meta.json is half-written) and says so."""
    from ray.train._internal.session import _TrainingResult
    from ray import tune

    from sweeps.tune_objects import restore_existing

    if where == "s3":
        s3 = request.getfixturevalue("s3_env")
        base = f"s3://{s3['bucket']('mmsa-restore')}/p"
    else:
        base = str(tmp_path)
    _checkpoint(base, "trial_x", 0, "r")
    _checkpoint(base, "trial_x", 1, "r")
    named = _checkpoint(base, "trial_x", 2, "r")
    _checkpoint(base, "trial_x", 3, "r", meta=False)
    storage.delete(named)
    fs, path = storage.filesystem(named)
    result = _TrainingResult(checkpoint=tune.Checkpoint(path, filesystem=fs), metrics={"training_iteration": 3})
    restored = restore_existing(result)
    assert restored.checkpoint.path.endswith("trial_x/checkpoint_000001")
    assert restored.metrics == {"training_iteration": 3}
    assert "checkpoint_000002 no longer exists" in capsys.readouterr().err
    # an existing checkpoint is used as named; a trial with none left fails as Tune's restore would
    assert restore_existing(restored) is restored
    assert newest_trial_checkpoint(fs, path.rsplit("/", 2)[0] + "/trial_none") is None


def test_the_trainable_keeps_its_recorded_name():
    from ray.tune.experiment import Experiment

    from sweeps.runtime_options import TrialResources
    from sweeps.tune_objects import TRAINABLE_NAME, make_trainable

    cls = make_trainable(None, None, TrialResources())  # type: ignore[arg-type]
    assert Experiment.get_trainable_name(cls) == TRAINABLE_NAME
    assert cls.restore.__qualname__.startswith("make_trainable.")  # the fallback restore


def _cli(args: list[str], tmp_path: Path, env: dict | None = None, script: str = "sweeps/hscl.py"):
    env = {**os.environ, **(env or {})}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run([sys.executable, str(REPO / script), *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env=env)


def _one_line_refusal(out: subprocess.CompletedProcess, *needles: str) -> None:
    assert out.returncode == 2, out.stderr[-3000:]
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert all(n in lines[0] for n in needles), lines[0]
    assert "Started a local Ray" not in out.stdout + out.stderr


def test_a_uri_storage_path_needs_a_tracking_uri_and_an_optuna_storage(tmp_path):
    out = _cli(["--smoke", "--storage-path", "s3://mmsa-any/p"], tmp_path)
    _one_line_refusal(out, "--storage-path s3://mmsa-any/p", "--tracking-uri")
    out = _cli(["--smoke", "--storage-path", "s3://mmsa-any/p", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"],
               tmp_path)
    _one_line_refusal(out, "--optuna-storage", "postgresql://")
    out = _cli(["--smoke", "--storage-path", "s3://mmsa-any/p", "--tracking-uri", f"sqlite:///{tmp_path}/m.db",
                "--optuna-storage", "s3://mmsa-any/journal.log"], tmp_path)
    _one_line_refusal(out, "--optuna-storage s3://mmsa-any/journal.log", "journal file")
    out = _cli(["--smoke", "--storage-path", "s3://mmsa-any/p?secret_key=abc", "--tracking-uri",
                f"sqlite:///{tmp_path}/m.db", "--optuna-storage", str(tmp_path / "j.log")], tmp_path)
    _one_line_refusal(out, "AWS_SECRET_ACCESS_KEY")
    out = _cli(["quickstart", "--smoke", "--storage-path", "s3://mmsa-any/p"], tmp_path, script="ablations/run.py")
    _one_line_refusal(out, "--tracking-uri")
    assert not (tmp_path / "s3:").exists() and not (tmp_path / "m.db").exists()


def test_an_unreachable_bucket_is_refused_before_any_trial(s3_server, tmp_path):
    out = _cli(["--smoke", "--storage-path", "s3://mmsa-no-such-bucket/p", "--tracking-uri",
                f"sqlite:///{tmp_path}/m.db", "--optuna-storage", str(tmp_path / "j.log")], tmp_path,
               env=s3_server["env"])
    _one_line_refusal(out, "s3://mmsa-no-such-bucket/p", "cannot be created or written")
    assert S3_SECRET not in out.stdout + out.stderr
    assert not (tmp_path / "s3:").exists() and not (tmp_path / "j.log").exists()
