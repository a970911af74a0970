"""MLflow outages and a slow MLflow during a sweep — a real `mlflow server` (SQLite backend, bound to
127.0.0.1, stopped by PID), a real local Ray; `slow`. Each ends with `check_nothing_lost`."""

from __future__ import annotations

import sqlite3
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.faults.conftest import check_nothing_lost
from tests.processes import free_port, kill_session
from tests.sweeps.conftest import REPO, wait_for

pytestmark = pytest.mark.slow
# The trials' MLflow client budget for this test: 4 retries, backoff 2 s (about 2 + 4 + 8 + 16 = 30 s).
CLIENT_BUDGET = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "2",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "10", "MMSA_MLFLOW_WAIT": "300"}


class Server:
    """`mlflow server` on a fixed port and backend, that can be stopped and started again."""

    def __init__(self, tmp_path: Path, env: dict):
        self.tmp, self.env, self.port = tmp_path, env, free_port()
        self.db = tmp_path / "server.db"
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self):
        self.starts += 1
        self.proc = subprocess.Popen(
            ["mlflow", "server", "--backend-store-uri", f"sqlite:///{self.db}", "--artifacts-destination",
             str(self.tmp / "artifacts"), "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            env=self.env, stdout=open(self.tmp / f"server{self.starts}.log", "w"), stderr=subprocess.STDOUT,
            start_new_session=True)
        wait_for(lambda: _http_ok(f"{self.uri}/health"), 120, "mlflow server")

    def stop(self):
        if self.proc is not None:
            kill_session(self.proc.pid)  # by PID (mlflow server may ignore SIGTERM)
            self.proc.wait(30)
            self.proc = None

    def epochs_logged(self) -> int:
        """Rows of per-epoch validation MAE in the backend, read directly (works while it is down)."""
        if not self.db.exists():
            return 0
        with sqlite3.connect(self.db) as con:
            try:
                return con.execute("select count(*) from metrics where key = 'valid/mae'").fetchone()[0]
            except sqlite3.OperationalError:
                return 0


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def test_mlflow_down_mid_sweep_shorter_and_longer_than_the_client_retry_budget(sweep_env, tmp_path):
    """(MLflow down mid-sweep) The server is stopped twice while trials run: once for about 10 s
    (a restart; inside the client's ~30 s retry budget: its own retries carry the requests) and once
    for about 50 s (past the budget: the trial keeps its epochs' metrics pending, training goes on,
    and they are sent in order once the server is back; trials starting or ending meanwhile wait
    for it, up to $MMSA_MLFLOW_WAIT). Then the sweep finishes by itself: every run FINISHED, every
    epoch's metrics present exactly once (`check_nothing_lost`), and the trial log shows the
    buffering happened."""
    env = dict(sweep_env, **CLIENT_BUDGET)
    server = Server(tmp_path, env)
    server.start()
    runs = tmp_path / "runs"
    log = tmp_path / "sweep.log"
    sweep = subprocess.Popen(
        ["python", "sweeps/hscl.py", "--smoke", "--num-cpus", "2", "--num-samples", "2", "--max-concurrent", "1",
         "--max-epochs", "8", "--asha-grace-period", "8", "--final-seeds", "1111", "--name", "outage",
         "--storage-path", str(runs), "--tracking-uri", server.uri],
        cwd=REPO, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: server.epochs_logged() >= 1, 300, "the first epoch in MLflow")
        server.stop()  # short: straight back
        server.start()
        n = server.epochs_logged()
        wait_for(lambda: server.epochs_logged() >= n + 1, 300, "an epoch logged after the short outage")
        server.stop()  # long: past the client's budget
        time.sleep(45)
        server.start()
        assert sweep.wait(600) == 0, log.read_text()[-5000:]
    finally:
        kill_session(sweep.pid)
        server.stop()
    server.start()
    try:
        text = log.read_text()
        assert "did not take the metrics of epoch" in text or "did not accept" in text, text[-5000:]
        check_nothing_lost(server.uri, runs / "outage", name="outage", num_samples=2, seeds=[1111])
    finally:
        server.stop()
