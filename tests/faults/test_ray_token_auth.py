"""(7) Ray token auth: a head started with ``RAY_AUTH_MODE=token`` (on 127.0.0.1, in its own
process session) runs a ``ray job submit`` that carries the token end to end, and refuses a client
without it. Ends with `check_nothing_lost` on the submitted sweep. `slow`: a real head node.
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.faults.conftest import check_nothing_lost
from tests.processes import free_port, kill_session
from tests.sweeps.conftest import REPO, wait_for

pytestmark = pytest.mark.slow


def _status(url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def test_token_auth_head_runs_an_authenticated_job_and_refuses_others(sweep_env, tmp_path):
    """The job path end to end: a real ``ray start --head`` (127.0.0.1, token auth) and ``ray job
    submit --working-dir .`` of a smoke sweep. The job submitted with ``RAY_AUTH_TOKEN`` finishes its sweep (nothing lost); the same
    submission without a token or with a wrong one fails, and the job API answers 401/403 to a
    request without the token. The token never reaches the MLflow store or the job's log."""
    head_home, client_home = tmp_path / "head-home", tmp_path / "client-home"
    head_home.mkdir()
    client_home.mkdir()
    head_env = dict(sweep_env, HOME=str(head_home), RAY_AUTH_MODE="token")
    subprocess.run(["ray", "get-auth-token", "--generate"], env=head_env, check=True,
                   capture_output=True, text=True, timeout=60)
    token = (head_home / ".ray" / "auth_token").read_text().strip()
    assert token
    port, dash, client_port = free_port(), free_port(), free_port()
    runs = tmp_path / "runs"
    uri = f"sqlite:///{runs}/mlflow.db"
    head = subprocess.Popen(
        ["ray", "start", "--head", "--node-ip-address", "127.0.0.1", "--dashboard-host", "127.0.0.1",
         "--port", str(port), "--dashboard-port", str(dash), "--ray-client-server-port", str(client_port),
         # the agent's ports too: its default 52365 is taken whenever another Ray runs on the machine,
         # and the job server then answers "No available agent" for good
         "--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
         "--num-cpus", "2", "--disable-usage-stats", "--temp-dir", sweep_env["RAY_TMPDIR"]],
        env=head_env, stdout=open(tmp_path / "head.log", "w"), stderr=subprocess.STDOUT,
        start_new_session=True)
    address = f"http://127.0.0.1:{dash}"
    submit = ["ray", "job", "submit", "--address", address, "--working-dir", ".", "--", "python",
              "sweeps/hscl.py", "--smoke", "--num-samples", "2", "--max-epochs", "2",
              "--final-seeds", "1111", "--name", "job", "--tracking-uri", uri,
              "--storage-path", str(runs)]
    # the clients: another HOME (no token file), the token only where the test gives it
    no_token = dict(sweep_env, HOME=str(client_home), RAY_AUTH_MODE="token")
    with_token = dict(no_token, RAY_AUTH_TOKEN=token)
    wrong_token = dict(no_token, RAY_AUTH_TOKEN="0" * len(token))
    try:
        assert head.wait(120) == 0, (tmp_path / "head.log").read_text()[-3000:]
        wait_for(lambda: _status(f"{address}/api/version", token) == 200, 60, "the job server")
        for _ in range(30):  # the job agent starts a little after the dashboard answers
            job = subprocess.run(submit, cwd=REPO, env=with_token, capture_output=True, text=True,
                                 timeout=480)
            if "No available agent" not in job.stderr:
                break
            time.sleep(2)
        (tmp_path / "job.log").write_text(job.stdout + job.stderr)
        assert job.returncode == 0 and "succeeded" in job.stdout, (job.stdout + job.stderr)[-5000:]
        assert token not in job.stdout + job.stderr
        # then, on the same head: clients without the token are refused
        assert _status(f"{address}/api/jobs/") in (401, 403)  # unauthenticated: refused
        assert _status(f"{address}/api/jobs/", "0" * len(token)) in (401, 403)  # a wrong token too
        for env, what in ((no_token, "no-token"), (wrong_token, "wrong-token")):
            refused = subprocess.run(submit, cwd=REPO, env=env, capture_output=True, text=True,
                                     timeout=120)
            said = refused.stdout + refused.stderr
            (tmp_path / f"{what}.log").write_text(said)
            assert refused.returncode != 0 and "succeeded" not in said, said[-3000:]
        assert "Invalid authentication token" in said  # the head refused the wrong one
    finally:
        kill_session(head.pid)  # by PID: `ray stop` would stop every Ray on this machine
    check_nothing_lost(uri, runs / "job", name="job", num_samples=2, seeds=[1111])
    assert token.encode() not in (runs / "mlflow.db").read_bytes()
