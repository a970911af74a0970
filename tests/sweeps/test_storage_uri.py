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


def test_an_ablation_keeps_its_state_at_an_s3_uri(s3_server, tmp_path):
    from tests.ablations.conftest import run_cli as run_ablation, study_runs

    import os
    import shutil
    import tempfile

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
        args = ["quickstart", "--smoke", "--variants", "text_only", "--seeds", "1111", "--num-cpus", "2",
                "--storage-path", f"s3://{bucket}/p", "--tracking-uri", uri]
        first = run_ablation(args, env)
        assert first.returncode == 0, first.stdout[-6000:]
        _, parent, children = study_runs(uri, "quickstart")
        assert parent.info.status == "FINISHED" and len(children) == 2
        assert all(c.info.status == "FINISHED" for c in children)
        keys = set(objects(env, bucket))
        grids = {k.split("/")[3] for k in keys if k.startswith("p/ablations/quickstart/") and k.count("/") > 3}
        assert grids and all(any(k.startswith(f"p/ablations/quickstart/{g}/trial_") for k in keys) for g in grids)
        assert any(k.endswith(".grid.json") for k in keys) and any("/checkpoint_" in k for k in keys)
        assert not (REPO / "s3:").exists()
        again = run_ablation(args, env)
        assert again.returncode == 0 and "2 finished before, 0 to train" in again.stdout, again.stdout[-3000:]
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
