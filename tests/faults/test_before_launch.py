"""Faults that must stop a sweep before anything starts: in seconds, with a message naming the
URI or path and what to do, before Ray starts, nothing recorded (`check_nothing_lost` with
``num_samples=0``). Fast: no Ray ever starts here.

Scenario (9) of the matrix, a resume with a changed configuration, is refused by
`sweeps.state.open_sweep_state`; tests/sweeps/test_state.py
``test_changed_configuration_or_store_is_refused_with_advice`` covers it.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import socket
import sys
import threading
import time
from contextlib import contextmanager
from typing import ClassVar

import pytest

from sweeps.config import SweepConfig
from sweeps.runtime_options import RuntimeOptions
from sweeps.preflight import PreflightError, check_tracking, redact_uri
from tests.faults.conftest import check_nothing_lost
from tests.processes import free_port, run_in_session
from tests.sweeps.conftest import REPO

SECRET = "s3cr3t-pw-41"


def _cli(script: str, args: list[str], env: dict) -> tuple[int, str]:
    return run_in_session([sys.executable, script, *args], cwd=REPO, env=env, timeout=120,
                          what=script)


@contextmanager
def _server(handler_cls):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_cls)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _BasicAuthMlflow(http.server.BaseHTTPRequestHandler):
    """Answers like `mlflow server --app-name basic-auth`: 401 unless user `alice` / SECRET."""

    good = "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()
    seen: ClassVar[list[str]] = []

    def do_GET(self):
        type(self).seen.append(self.path)
        if self.headers.get("Authorization") != self.good:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="mlflow"')
            self.end_headers()
            self.wfile.write(b"You are not authenticated.")
            return
        body = json.dumps({"experiments": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_mlflow_server_down_at_launch_fails_fast_before_ray(sweep_env, tmp_path):
    """(1) MLflow down at launch: the sweep and the ablation entry exit 2 at once (no MLflow
    retries, no traceback) naming the URI and how to start a server; Ray never starts; nothing
    is recorded."""
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    runs = tmp_path / "runs"
    code, out = _cli("sweeps/hscl.py", ["--smoke", "--name", "down", "--tracking-uri", uri,
                                        "--storage-path", str(runs)], sweep_env)
    assert code == 2, out[-3000:]
    assert f"MLflow tracking server {uri} is not reachable" in out
    assert "mlflow server --host 127.0.0.1" in out and "Traceback" not in out
    code, out = _cli("ablations/run.py", ["quickstart", "--smoke", "--tracking-uri", uri,
                                          "--storage-path", str(runs)], sweep_env)
    assert code == 2 and f"MLflow tracking server {uri} is not reachable" in out, out[-3000:]
    check_nothing_lost(uri, runs / "down", name="down", num_samples=0,
                       ray_tmpdir=sweep_env["RAY_TMPDIR"])


def test_a_server_that_never_answers_is_given_up_on_after_the_probe_timeout():
    """(1b) A port that accepts connections but never answers (a hung server, a firewall that
    swallows packets): the probe's short timeout, then one second try of twice that (a busy or
    cold server), ends the check, naming the URI and the time waited."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(2)
        uri = f"http://127.0.0.1:{listener.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(PreflightError, match=f"{uri} is not reachable.*waited at most 1.5 s"):
            check_tracking(uri, timeout=0.5)
        assert 1.4 < time.monotonic() - start < 5


def test_storage_path_blocked_by_a_file_is_refused_before_launch(sweep_env, tmp_path):
    """(4) Storage path unusable — a file where the directory should be: exit 2 naming the path,
    before Ray starts, nothing recorded (the MLflow store elsewhere stays empty)."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    code, out = _cli("sweeps/hscl.py", ["--smoke", "--name", "blocked", "--tracking-uri", uri,
                                        "--storage-path", str(blocker / "runs")], sweep_env)
    assert code == 2, out[-3000:]
    assert f"storage path {str(blocker / 'runs')!r} cannot be created or written" in out
    assert "Traceback" not in out
    check_nothing_lost(uri, blocker / "runs" / "blocked", name="blocked", num_samples=0,
                       ray_tmpdir=sweep_env["RAY_TMPDIR"])
    # the same with the default store under the blocked path: the pre-flight check names it
    code, out = _cli("sweeps/hscl.py", ["--smoke", "--storage-path", str(blocker / "runs")],
                     sweep_env)
    assert code == 2 and f"{blocker} is not a directory" in out, out[-3000:]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_storage_path_is_refused_before_launch(sweep_env, tmp_path):
    """(4b) A read-only storage path: exit 2 naming it, nothing recorded."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        code, out = _cli("sweeps/hscl.py", ["--smoke", "--name", "ro", "--storage-path", str(ro)],
                         sweep_env)
    finally:
        ro.chmod(0o755)
    assert code == 2 and str(ro) in out and "not writable" in out, out[-3000:]
    check_nothing_lost(f"sqlite:///{ro}/mlflow.db", ro / "ro", name="ro", num_samples=0,
                       ray_tmpdir=sweep_env["RAY_TMPDIR"])


def test_wrong_mlflow_password_is_reported_in_seconds_and_never_recorded(sweep_env, tmp_path, monkeypatch):
    """(6) MLflow basic auth with a wrong password (credentials from the environment): the sweep
    exits 2 with "authentication failed for <uri>" before Ray starts; the password appears in
    no output; the right password passes the check. (A stand-in server that answers as
    `mlflow server --app-name basic-auth` does, so that every credential case runs in seconds; the
    real server, with a whole sweep, is tests/faults/test_mlflow_basic_auth.py.)"""
    _BasicAuthMlflow.seen = []
    with _server(_BasicAuthMlflow) as uri:
        env = dict(sweep_env, MLFLOW_TRACKING_USERNAME="alice", MLFLOW_TRACKING_PASSWORD="wrong-" + SECRET)
        runs = tmp_path / "runs"
        code, out = _cli("sweeps/hscl.py", ["--smoke", "--name", "auth", "--tracking-uri", uri,
                                            "--storage-path", str(runs)], env)
        assert code == 2, out[-3000:]
        assert f"authentication failed for {uri}" in out and "MLFLOW_TRACKING_PASSWORD" in out
        assert SECRET not in out
        assert _BasicAuthMlflow.seen and all(p.startswith("/api/2.0/mlflow/") for p in _BasicAuthMlflow.seen)
        check_nothing_lost(uri, runs / "auth", name="auth", num_samples=0,
                           ray_tmpdir=sweep_env["RAY_TMPDIR"])

        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", SECRET)
        check_tracking(uri)  # the right credentials pass
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
        monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
        with pytest.raises(PreflightError, match="authentication failed.*no credentials were sent"):
            check_tracking(uri)
        # credentials in the URI work too, and the message shows the URI redacted
        host = uri[len("http://"):]
        check_tracking(f"http://alice:{SECRET}@{host}")
        with pytest.raises(PreflightError) as info:
            check_tracking(f"http://alice:wrong-{SECRET}@{host}")
        assert f"authentication failed for http://alice:***@{host}" in str(info.value)
        assert SECRET not in str(info.value)


def test_a_password_in_the_tracking_uri_is_never_recorded():
    """(6b) Everything the sweep records of its configuration (``describe()``: ``sweep.json``-side
    state, ``search_space.json`` on the parent run) holds the URI redacted; the configuration hash
    does not depend on it (a runtime field), nor on ``trial_timeout``."""
    uri = f"http://alice:{SECRET}@127.0.0.1:5000"
    cfg = SweepConfig(runtime=RuntimeOptions(tracking_uri=uri, trial_timeout=30))
    described = json.dumps(cfg.describe())
    assert SECRET not in described and "http://alice:***@127.0.0.1:5000" in described
    space = [{"name": "x"}]
    assert cfg.config_hash(space) == SweepConfig().config_hash(space)
    assert redact_uri("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    assert redact_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert redact_uri(f"https://{SECRET}@host/mlflow") == "https://***@host/mlflow"
    with pytest.raises(ValueError, match="trial_timeout=-1"):
        RuntimeOptions(trial_timeout=-1)
    from sweeps.cli import build_parser, config_from_args

    assert config_from_args(build_parser().parse_args(["--trial-timeout", "30"])).runtime.trial_timeout == 30
