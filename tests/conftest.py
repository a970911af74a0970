"""Shared test fixtures: one torch thread (the machine is shared) and the real-data folder."""

from __future__ import annotations

from pathlib import Path

import pytest

try:  # one intra-op thread: tests run beside other developers' jobs on two cores
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """``<repo>/../shared/data`` (read-only real data); skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} not present")
    return SHARED_DATA


# --- a real local S3 server (moto_server), shared by the storage-URI tests --------------------------
S3_SECRET = "mmsa-test-secret-never-recorded"  # the tests look for it in everything written


@pytest.fixture(scope="session")
def s3_server():
    """A ``moto_server`` on a free loopback port, in its own process session (stopped by PID), and
    the environment that points a client at it: ``{"env": {...}, "bucket": make_bucket}``. Fake
    credentials; `S3_SECRET` is the secret key."""
    import os
    import subprocess
    import sys
    import time

    from tests.processes import free_port, http_ok, kill_session

    pytest.importorskip("moto.server", reason="moto[server] (the test extra) is not installed")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "mmsatestkey",
           "AWS_SECRET_ACCESS_KEY": S3_SECRET, "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    try:
        deadline = time.time() + 60
        while not http_ok(f"http://127.0.0.1:{port}/moto-api/"):
            if proc.poll() is not None or time.time() > deadline:
                raise AssertionError(f"moto_server did not start on port {port}")
            time.sleep(0.3)

        def make_bucket(name: str) -> str:
            import boto3

            boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                         aws_secret_access_key=S3_SECRET, region_name="us-east-1").create_bucket(Bucket=name)
            return name

        yield {"env": env, "bucket": make_bucket}
    finally:
        kill_session(proc.pid)
        proc.wait(timeout=30)


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """This process's environment pointed at `s3_server` (pyarrow reads it when it opens a bucket)."""
    for key, value in s3_server["env"].items():
        monkeypatch.setenv(key, value)
    return s3_server
