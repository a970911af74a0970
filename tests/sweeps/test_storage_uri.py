"""A smoke sweep and a smoke ablation whose storage path is an s3:// URI, on a real local S3 server
(moto_server, shared by the session): every file at the URI, nothing in a local ``s3:`` folder, every
MLflow run FINISHED, no credential or endpoint recorded, and a re-run from another working directory
that reports the finished work from the URI alone."""

from __future__ import annotations

import sys

import pytest

from tests.conftest import S3_SECRET
from tests.processes import run_in_session
from tests.sweeps.conftest import REPO, run_cli, store

pytestmark = pytest.mark.slow


def objects(env: dict, bucket: str) -> dict[str, bytes]:
    """Every object in `bucket`: key -> content."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                      aws_secret_access_key=S3_SECRET, region_name="us-east-1")
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])]
    return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def assert_nothing_recorded(secrets: list[str], uri: str, blobs: dict[str, bytes], console: str) -> None:
    """No credential or endpoint in the console, the MLflow store's tags/params, or the state files."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)
    recorded = [console] + [f"{r.data.tags} {r.data.params}" for r in runs]
    recorded += [k for k in blobs] + [b.decode(errors="replace") for k, b in blobs.items() if not k.endswith(".pt")]
    for secret in secrets:
        assert not any(secret in text for text in recorded), secret


def test_a_sweep_keeps_its_state_at_an_s3_uri_and_resumes_from_it(sweep_env, s3_server, tmp_path):
    env = {**sweep_env, **s3_server["env"]}
    bucket = s3_server["bucket"]("mmsa-sweeps")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    args = ["--smoke", "--num-cpus", "2", "--name", "s3-smoke", "--storage-path", f"s3://{bucket}/p",
            "--tracking-uri", uri, "--optuna-storage", str(tmp_path / "optuna.log")]
    first = run_cli(args, env, log=tmp_path / "first.log")
    assert first.returncode == 0, first.stdout[-6000:]

    blobs = objects(env, bucket)
    keys = set(blobs)
    assert {"p/s3-smoke/sweep.json", "p/s3-smoke/best_config.json", "p/s3-smoke/search_result.json",
            "p/s3-smoke/final.grid.json", "p/s3-smoke/search/tuner.pkl", "p/s3-smoke/final/tuner.pkl"} <= keys
    assert any(k.startswith("p/s3-smoke/search/experiment_state-") for k in keys)
    assert any(k.startswith("p/s3-smoke/final/experiment_state-") for k in keys)
    assert any(k.startswith("p/s3-smoke/final/trial_") and k.endswith("/sweep_meta.json") for k in keys)
    assert any(k.endswith("/trainer_state.pt") for k in keys)
    final_trials = {k.split("/")[3] for k in keys if k.startswith("p/s3-smoke/final/trial_")}
    assert len(final_trials) == 2
    for trial in final_trials:  # pruned on the bucket: one checkpoint per trial once the stage ended
        assert len({k.split("/")[4] for k in keys if k.startswith(f"p/s3-smoke/final/{trial}/checkpoint_")}) == 1
    assert not (REPO / "s3:").exists() and not (tmp_path / "s3:").exists()

    client, parents, search, final = store(uri)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert parents[0].data.tags["sweep_dir"] == f"s3://{bucket}/p/s3-smoke"
    assert len(search) == 3 and len(final) == 2
    runs = client.search_runs([parents[0].info.experiment_id], max_results=1000)
    assert runs and all(r.info.status == "FINISHED" for r in runs), [(r.info.run_name, r.info.status) for r in runs]
    assert client.list_artifacts(parents[0].data.tags["best_model_run_id"], "model")  # read from the bucket
    endpoint = s3_server["env"]["AWS_ENDPOINT_URL"]
    own = {k: v for k, v in blobs.items() if k.count("/") == 2}  # sweep.json, best_config.json, grid specs, ...
    assert "p/s3-smoke/sweep.json" in own
    assert_nothing_recorded([S3_SECRET, endpoint], uri, own, first.stdout)
    assert_nothing_recorded([S3_SECRET], uri, blobs, "")  # Tune's state holds the endpoint (its pickled
    # filesystem), never a credential

    # from another working directory, with nothing local but the MLflow store and the journal
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, out = run_in_session([sys.executable, str(REPO / "sweeps" / "hscl.py"), *args], cwd=elsewhere, env=env,
                               timeout=420, what="sweep re-run")
    assert code == 0, out[-6000:]
    assert "s3-smoke" in out and "best" in out.lower()
    _, parents2, search2, final2 = store(uri)
    assert len(parents2) == 1 and len(search2) == 3 and len(final2) == 2  # no new run
    assert not (elsewhere / "s3:").exists() and not (elsewhere / "runs").exists()


def test_an_ablation_at_an_s3_uri_resumes_past_a_deleted_checkpoint(s3_server, tmp_path):
    """An ablation whose storage path is s3://: killed (SIGKILL of the driver's session) while its
    trial hangs after its second checkpoint; the checkpoint Tune's state names is then deleted (what
    retention does when the kill lands between deleting it and saving the state naming its successor);
    the re-run resumes the trial from its newest checkpoint that exists, says so, and finishes; a
    third run finds everything finished. Everything lives in the bucket."""
    import os
    import shutil
    import subprocess
    import tempfile
    import time

    from tests.ablations.conftest import run_cli as run_ablation, study_runs
    from tests.processes import kill_session
    from tests.sweeps.conftest import wait_for

    ray_tmp = tempfile.mkdtemp(prefix="ra", dir="/tmp")
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, **s3_server["env"], "HOME": str(home), "RAY_TMPDIR": ray_tmp,
           "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    for key in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID"):
        env.pop(key, None)
    try:
        bucket = s3_server["bucket"]("mmsa-studies")
        uri = f"sqlite:///{tmp_path}/mlflow.db"
        args = ["quickstart", "--smoke", "--variants", "full", "--seeds", "1111", "--max-epochs", "4",
                "--num-cpus", "2", "--storage-path", f"s3://{bucket}/p", "--tracking-uri", uri]
        marker = tmp_path / "fault"
        hang = ["--inject-fault", f"trial=*,epoch=3,kind=hang,seconds=900,marker={marker}"]
        with open(tmp_path / "first.log", "w") as log:
            proc = subprocess.Popen([sys.executable, "ablations/run.py", *args, *hang], cwd=REPO, env=env,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            def checkpoints() -> list[str]:
                return sorted(k for k in objects(env, bucket) if k.endswith("/sweep_meta.json"))

            wait_for(lambda: len(checkpoints()) >= 2 and marker.exists() and any(marker.iterdir()), 300,
                     "the trial's second checkpoint and its hang")
            time.sleep(10)  # Tune saves the experiment state naming the newest checkpoint
        finally:
            kill_session(proc.pid)
            proc.wait(timeout=60)
        named = checkpoints()[-1].rsplit("/", 1)[0]
        assert named.endswith("/checkpoint_000001"), checkpoints()
        import pyarrow.fs

        fs = pyarrow.fs.S3FileSystem(endpoint_override=s3_server["env"]["AWS_ENDPOINT_URL"],
                                     access_key="mmsatestkey", secret_key=S3_SECRET, region="us-east-1",
                                     allow_delayed_open=True)
        fs.delete_dir(f"{bucket}/{named}")

        second = run_ablation(args, env)
        assert second.returncode == 0, second.stdout[-6000:]
        assert "checkpoint_000001 no longer exists" in second.stdout and "checkpoint_000000" in second.stdout
        _, parent, children = study_runs(uri, "quickstart")
        assert parent.info.status == "FINISHED" and len(children) == 1
        child = children[0]
        assert child.info.status == "FINISHED" and child.data.tags["resumed_from_epoch"] == "1"
        assert int(child.data.metrics["epochs_run"]) == 4
        from mlflow.tracking import MlflowClient

        steps = [m.step for m in MlflowClient(tracking_uri=uri).get_metric_history(child.info.run_id, "train/loss")]
        assert steps == [1, 2, 3, 4]  # epoch 2, trained again, is not logged twice
        keys = set(objects(env, bucket))
        assert any(k.startswith("p/ablations/quickstart/") and k.endswith(".grid.json") for k in keys)
        assert any(k.startswith("p/ablations/quickstart/") and "/trial_" in k and "/checkpoint_" in k for k in keys)
        assert not (REPO / "s3:").exists()

        third = run_ablation(args, env)
        assert third.returncode == 0 and "1 finished before, 0 to train" in third.stdout, third.stdout[-3000:]
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)

