"""MLflow outages and a slow MLflow during a sweep — a real `mlflow server` (SQLite backend, bound to
127.0.0.1, stopped by PID), a real local Ray; `slow`. Each ends with `check_nothing_lost`."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.faults.conftest import check_nothing_lost
from tests.processes import free_port, http_ok, kill_session
from tests.sweeps.conftest import REPO, wait_for

pytestmark = pytest.mark.slow
# The trials' MLflow client budget for this test: 4 retries, backoff 2 s (about 2 + 4 + 8 + 16 = 30 s).
CLIENT_BUDGET = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "4", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "2",
                 "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
MLFLOW_WAIT = ["--mlflow-wait", "300"]  # how long a trial keeps trying MLflow at its start and end


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
        wait_for(lambda: http_ok(f"{self.uri}/health"), 120, "mlflow server")

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




def test_mlflow_down_mid_sweep_shorter_and_longer_than_the_client_retry_budget(sweep_env, tmp_path):
    """(MLflow down mid-sweep) The server is stopped twice while trials run: once for about 10 s
    (a restart; inside the client's ~30 s retry budget: its own retries carry the requests) and once
    for about 50 s (past the budget: the trial keeps its epochs' metrics pending, training goes on,
    and they are sent in order once the server is back; trials starting or ending meanwhile wait
    for it, up to --mlflow-wait). Then the sweep finishes by itself: every run FINISHED, every
    epoch's metrics present exactly once (`check_nothing_lost`), and the trial log shows the
    buffering happened."""
    env = dict(sweep_env, **CLIENT_BUDGET)
    server = Server(tmp_path, env)
    server.start()
    runs = tmp_path / "runs"
    log = tmp_path / "sweep.log"
    sweep = subprocess.Popen(
        ["python", "sweeps/hscl.py", "--smoke", "--num-cpus", "2", "--num-samples", "1",
         "--max-epochs", "6", "--asha-grace-period", "6", "--final-seeds", "1111", "--name", "outage",
         "--storage-path", str(runs), "--tracking-uri", server.uri, *MLFLOW_WAIT],
        cwd=REPO, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: server.epochs_logged() >= 1, 300, "the first epoch in MLflow")
        server.stop()  # short: straight back
        server.start()
        n = server.epochs_logged()
        wait_for(lambda: server.epochs_logged() >= n + 1, 300, "an epoch logged after the short outage")
        server.stop()  # long: past the client's budget
        time.sleep(38)
        server.start()
        assert sweep.wait(600) == 0, log.read_text()[-5000:]
    finally:
        kill_session(sweep.pid)
        server.stop()
    server.start()
    try:
        text = log.read_text()
        assert "did not take the metrics of epoch" in text or "did not accept" in text, text[-5000:]
        check_nothing_lost(server.uri, runs / "outage", name="outage", num_samples=1, seeds=[1111])
        assert any((tmp_path / "artifacts").rglob("search_space.json"))  # artifacts went through the server
    finally:
        server.stop()


class SlowProxy:
    """An HTTP proxy in front of the server: every answer `latency` s late, and the answers to the
    first `slow_creates` ``runs/create`` POSTs `create_delay` s late — after the server has created
    the run, past the client's read timeout, so the client sends the POST again."""

    def __init__(self, upstream: str, *, latency: float, slow_creates: int, create_delay: float):
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        host, port = upstream[len("http://"):].split(":")
        self.creates = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                conn = http.client.HTTPConnection(host, int(port), timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                delay = latency
                if self.command == "POST" and self.path.endswith("/runs/create"):
                    with proxy.lock:
                        proxy.creates += 1
                        if proxy.creates <= slow_creates:
                            delay = create_delay
                time.sleep(delay)
                try:
                    self.send_response(resp.status)
                    for k, v in resp.getheaders():
                        if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                            self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (what this proxy is for)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_slow_mlflow_times_out_retries_posts_and_records_each_run_once(sweep_env, tmp_path):
    """(MLflow slow) Every answer 0.2 s late, and the first three ``runs/create`` answers 8 s late
    with a 3 s client read timeout: the client times out and POSTs again while the server has
    already created the run. The sweep still finishes, and each parent and trial has exactly one
    active run (`sweeps.tracking.Tracker` finds the twins by key and deletes all but the oldest):
    `check_nothing_lost` — one run per trial, no metric step twice."""
    from mlflow.tracking import MlflowClient

    env = dict(sweep_env, MLFLOW_HTTP_REQUEST_TIMEOUT="3", MLFLOW_HTTP_REQUEST_MAX_RETRIES="3",
               MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR="1")
    server = Server(tmp_path, env)
    server.start()
    try:
        with SlowProxy(server.uri, latency=0.2, slow_creates=3, create_delay=8.0) as proxy:
            runs = tmp_path / "runs"
            out = subprocess.run(
                ["python", "sweeps/hscl.py", "--smoke", "--num-cpus", "2", "--num-samples", "1",
                 "--final-seeds", "1111", "--name", "slow", "--storage-path", str(runs),
                 "--tracking-uri", proxy.uri, *MLFLOW_WAIT],
                cwd=REPO, env=env, capture_output=True, text=True, timeout=900, start_new_session=True)
            assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]
            assert proxy.creates >= 1 + 1 + 1 + 3  # parent + 1 search + 1 final runs, plus 3 re-sent POSTs
        check_nothing_lost(server.uri, runs / "slow", name="slow", num_samples=1, seeds=[1111])
        client = MlflowClient(tracking_uri=server.uri)
        exp = client.get_experiment_by_name("mmsa-synthetic-mosi")
        deleted = client.search_runs([exp.experiment_id], run_view_type=2)  # ViewType.DELETED_ONLY
        assert deleted, "the re-sent POSTs created no twin run (the proxy's delay did not bite)"
    finally:
        server.stop()
