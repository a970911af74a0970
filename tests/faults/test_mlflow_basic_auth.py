"""A real `mlflow server --app-name basic-auth` (the `mlflow[auth]` extra, installed by the test
extras; bound to 127.0.0.1, stopped by PID): a wrong password stops the sweep in seconds before Ray
starts; the right one, from the environment, runs a whole `--smoke` sweep, and afterwards neither
the password nor the Ray token is anywhere in what the sweep left behind — the MLflow backend store
(params, tags, metrics), its artifacts, the sweep's storage path (Tune state, checkpoints,
sweep.json), Ray's session logs and the sweep's own output."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sweeps.preflight import PreflightError, check_tracking
from tests.faults.conftest import check_nothing_lost
from tests.processes import free_port, kill_session, run_in_session
from tests.sweeps.conftest import REPO, wait_for

pytestmark = pytest.mark.slow
PASSWORD = "Pw-4f9c21-basic"
RAY_TOKEN = "c0ffee" * 8


@pytest.fixture
def auth_server(tmp_path, sweep_env):
    pytest.importorskip("flask_wtf", reason="the mlflow[auth] extra (pip install -e '.[test]')")
    ini = tmp_path / "auth.ini"
    ini.write_text("[mlflow]\ndefault_permission = READ\n"
                   f"database_uri = sqlite:///{tmp_path}/basic_auth.db\n"
                   f"admin_username = admin\nadmin_password = {PASSWORD}\n"
                   "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    port = free_port()
    env = dict(sweep_env, MLFLOW_AUTH_CONFIG_PATH=str(ini), MLFLOW_FLASK_SERVER_SECRET_KEY=os.urandom(8).hex())
    proc = subprocess.Popen(
        ["mlflow", "server", "--app-name", "basic-auth", "--backend-store-uri", f"sqlite:///{tmp_path}/store.db",
         "--artifacts-destination", str(tmp_path / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        env=env, stdout=open(tmp_path / "server.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        def up():
            try:
                check_tracking(uri)
            except PreflightError as exc:
                return "authentication failed" in str(exc)  # it answers, and wants credentials
            return False

        wait_for(up, 120, "the basic-auth mlflow server")
        yield uri
    finally:
        kill_session(proc.pid)


def _grep(root: Path, needles: list[str]) -> list[str]:
    """Files under `root` holding a needle (the auth server's own user store, its config and Ray's
    token file — where the secrets belong — left out)."""
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and path.name not in ("basic_auth.db", "auth.ini", "auth_token"):
            data = path.read_bytes()
            hits += [f"{path}: {n}" for n in needles if n.encode() in data]
    return hits


def test_basic_auth_wrong_password_fails_fast_and_the_right_one_runs_a_sweep_that_records_no_secret(
        auth_server, sweep_env, tmp_path):
    """(MLflow basic-auth) wrong password: exit 2 in < 10 s, "authentication failed for <uri>",
    the password in no output, nothing started (`check_nothing_lost` with 0 trials). Right password
    from MLFLOW_TRACKING_USERNAME / _PASSWORD, a Ray token in RAY_AUTH_TOKEN (and whatever token
    the local Ray wrote to ~/.ray/auth_token): the smoke sweep finishes (`check_nothing_lost`), and
    no secret is in the store's params and tags, the store file, the artifacts, the storage path,
    Ray's logs or the output."""
    uri = auth_server
    runs = tmp_path / "runs"
    wrong = dict(sweep_env, MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD="wrong-" + PASSWORD)
    start = time.monotonic()
    code, out = run_in_session([sys.executable, "sweeps/hscl.py", "--smoke", "--name", "auth", "--tracking-uri",
                                uri, "--storage-path", str(runs)], cwd=REPO, env=wrong, timeout=120,
                               what="sweep with a wrong password")
    assert code == 2 and time.monotonic() - start < 10, out[-3000:]
    assert f"authentication failed for {uri}" in out and "MLFLOW_TRACKING_PASSWORD" in out
    assert PASSWORD not in out
    check_nothing_lost(f"sqlite:///{tmp_path}/nothing.db", runs / "auth", name="auth", num_samples=0,
                       ray_tmpdir=sweep_env["RAY_TMPDIR"])

    right = dict(sweep_env, MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=PASSWORD,
                 RAY_AUTH_TOKEN=RAY_TOKEN)
    code, out = run_in_session([sys.executable, "sweeps/hscl.py", "--smoke", "--num-cpus", "2", "--num-samples",
                                "1", "--final-seeds", "1111", "--name", "auth", "--tracking-uri", uri,
                                "--storage-path", str(runs)], cwd=REPO, env=right, timeout=900,
                               what="sweep with the right password")
    assert code == 0, out[-5000:]
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = "admin", PASSWORD
    try:
        client, search = check_nothing_lost(uri, runs / "auth", name="auth", num_samples=1, seeds=[1111])
        exp = search[0].info.experiment_id
        for run in client.search_runs([exp], max_results=1000):
            recorded = " ".join([*run.data.params.values(), *run.data.tags.values()])
            assert PASSWORD not in recorded and RAY_TOKEN not in recorded, run.info.run_name
    finally:
        del os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]
    secrets = [PASSWORD, RAY_TOKEN]
    token_file = Path(sweep_env["HOME"]) / ".ray" / "auth_token"  # a token the local Ray made itself
    if token_file.exists() and token_file.read_text().strip():
        secrets.append(token_file.read_text().strip())
    assert not [s for s in secrets if s in out]
    hits = _grep(tmp_path, secrets) + _grep(Path(sweep_env["RAY_TMPDIR"]), secrets)
    assert not hits, hits
