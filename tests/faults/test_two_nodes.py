"""A real two-node Ray cluster on 127.0.0.1 and the loss of a node mid-trial (`slow`).

One cluster serves both checks (the README's "Cluster" recipe, run for real): ``ray start --head``
and ``ray start --address`` of a second node, each with its own ``--temp-dir`` and ports, token
auth on both (``RAY_AUTH_MODE=token``; the head's token handed to the worker and the driver as
``RAY_AUTH_TOKEN``), an ``mlflow server`` on 127.0.0.1, and a smoke sweep submitted from outside
the cluster with ``--address``. Each node has one logical CPU and a trial takes one, so the two
search trials run one per node. The worker node is labelled ``mmsa-fault-node=worker``: its trial
hangs at the end of epoch 2 (its epoch-1 checkpoint and metrics already reported) until the test
SIGKILLs that node's raylet by PID; the trial is retried on the head from its checkpoint.
Everything is stopped by process session, never by ``ray stop``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults.conftest import check_nothing_lost
from tests.processes import free_port, http_ok, kill_session, session_pids
from tests.sweeps.conftest import REPO, store, wait_for

pytestmark = pytest.mark.slow


def _agent_ports() -> list[str]:
    """Ports every node needs of its own when two share an address (their defaults collide)."""
    return ["--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
            "--runtime-env-agent-port", str(free_port()), "--metrics-export-port", str(free_port()),
            "--node-manager-port", str(free_port()), "--object-manager-port", str(free_port())]


def _start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _raylet(session: int) -> int:
    """The PID of the raylet among the processes of a `ray start` session."""
    for pid in session_pids(session):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if cmd.endswith(b"/raylet"):
            return pid
    raise AssertionError(f"no raylet in session {session}")


def test_two_nodes_share_a_sweep_and_a_lost_node_costs_no_epoch(sweep_env, tmp_path):
    """Two-node placement and node loss, nothing lost:
    - the smoke sweep joins through ``--address`` with the token; its two search trials run on
      two different Ray nodes (each run's ``ray_node_id`` tag, written by the trial itself);
    - the worker node's raylet is SIGKILLed while its trial hangs after epoch 1's checkpoint: the
      trial resumes on the head from that checkpoint (``resumed_from_epoch`` = 1, its
      ``ray_node_ids`` lists the worker then the head), in its one MLflow run, epochs 1 and 2 each
      logged exactly once (`check_nothing_lost`: one run per trial, no step twice, no gap, Optuna
      agreeing), and the final stage finishes on the surviving node."""
    homes = {n: tmp_path / f"{n}-home" for n in ("head", "worker", "client")}
    for h in homes.values():
        h.mkdir()
    base = {k: v for k, v in sweep_env.items() if k not in ("RAY_TMPDIR", "HOME")}
    head_env = dict(base, HOME=str(homes["head"]), RAY_AUTH_MODE="token")
    subprocess.run(["ray", "get-auth-token", "--generate"], env=head_env, check=True, capture_output=True,
                   text=True, timeout=60)
    token = (homes["head"] / ".ray" / "auth_token").read_text().strip()
    joined = dict(base, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)  # no token file in these HOMEs
    temp = {n: Path(sweep_env["RAY_TMPDIR"]) / n for n in ("h", "w")}  # short: socket paths
    port, mlflow_port = free_port(), free_port()
    address = f"127.0.0.1:{port}"
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--num-gpus", "0", "--disable-usage-stats",
              "--min-worker-port", "0", "--max-worker-port", "0"]
    procs: list[subprocess.Popen] = []
    runs = tmp_path / "runs"
    uri = f"http://127.0.0.1:{mlflow_port}"
    marker = tmp_path / "hang"
    server = _start(["mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
                     "--artifacts-destination", str(tmp_path / "artifacts"), "--host", "127.0.0.1",
                     "--port", str(mlflow_port), "--workers", "1"], base, tmp_path / "mlflow.log")
    try:
        try:
            head = _start(["ray", "start", "--head", "--port", str(port), "--dashboard-host", "127.0.0.1",
                           "--dashboard-port", str(free_port()), "--ray-client-server-port", str(free_port()),
                           "--temp-dir", str(temp["h"]), *common, *_agent_ports()], head_env, tmp_path / "head.log")
            procs.append(head)
            assert head.wait(120) == 0, (tmp_path / "head.log").read_text()[-3000:]
            worker = _start(["ray", "start", "--address", address, "--temp-dir", str(temp["w"]),
                             "--labels", "mmsa-fault-node=worker", *common, *_agent_ports()],
                            dict(joined, HOME=str(homes["worker"])), tmp_path / "worker.log")
            procs.append(worker)
            assert worker.wait(120) == 0, (tmp_path / "worker.log").read_text()[-3000:]
            wait_for(lambda: http_ok(f"{uri}/health"), 120, "mlflow server")

            driver = _start([sys.executable, "sweeps/hscl.py", "--smoke", "--address", address, "--name", "two-nodes",
                             "--num-samples", "2", "--max-epochs", "2", "--asha-grace-period", "2", "--rerank-top", "0",
                             "--final-seeds", "1111", "--cpus-per-trial", "1", "--max-failures", "1",
                             "--tracking-uri", uri, "--storage-path", str(runs), "--inject-fault",
                             f"trial=*,epoch=2,kind=hang,seconds=600,node=worker,marker={marker}"],
                            dict(joined, HOME=str(homes["client"])), tmp_path / "sweep.log")
            procs.append(driver)
            wait_for(lambda: (marker / "attempt-0").exists() or driver.poll() is not None, 300,
                     "the worker node's trial to reach epoch 2")
            assert driver.poll() is None, (tmp_path / "sweep.log").read_text()[-5000:]
            os.kill(_raylet(worker.pid), signal.SIGKILL)  # the node is gone
            assert driver.wait(420) == 0, (tmp_path / "sweep.log").read_text()[-5000:]
        finally:
            for proc in reversed(procs):
                kill_session(proc.pid)
        _check(uri, runs, marker, token, (tmp_path / "sweep.log").read_text())
    finally:
        kill_session(server.pid)


def _check(uri: str, runs: Path, marker: Path, token: str, log: str) -> None:
    client, search = check_nothing_lost(uri, runs / "two-nodes", name="two-nodes", num_samples=2, seeds=[1111])
    nodes = {r.data.tags["run_key"]: r.data.tags["ray_node_ids"].split(",") for r in search}
    first = {ids[0] for ids in nodes.values()}
    assert len(first) == 2, nodes  # the two search trials started on two nodes
    moved = search[0] if len(nodes[search[0].data.tags["run_key"]]) == 2 else search[1]
    stayed = search[1] if moved is search[0] else search[0]
    assert (moved.data.tags["run_key"] == (marker / "claimed-by").read_text())
    moved_nodes = nodes[moved.data.tags["run_key"]]
    assert len(moved_nodes) == 2 and moved_nodes[1] == nodes[stayed.data.tags["run_key"]][0], nodes
    assert moved.info.status == "FINISHED" and moved.data.tags["resumed_from_epoch"] == "1"
    assert [m.step for m in client.get_metric_history(moved.info.run_id, "valid/mae")] == [1, 2]
    assert token not in log
    _, _, _, final = store(uri)
    assert [r.info.status for r in final] == ["FINISHED"]
    assert final[0].data.tags["ray_node_id"] == moved_nodes[1]  # the surviving head
