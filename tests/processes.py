"""Process helpers for tests that start real Ray clusters and servers: free loopback ports, and
stopping by PID every process of the session a test started (never `ray stop`, which would stop
every Ray on the machine)."""

from __future__ import annotations

import os
import signal
import socket
import urllib.request


def http_ok(url: str) -> bool:
    """Whether `url` answers 200 within 5 s (a server's health endpoint while it starts)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_pids(sid: int) -> list[int]:
    """PIDs of the processes in process session `sid` (the ones a test started)."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                if os.getsid(int(name)) == sid:
                    out.append(int(name))
            except (ProcessLookupError, PermissionError):
                pass
    return out


def kill_session(sid: int) -> None:
    """SIGKILL every process of session `sid` (a driver and the Ray processes it left behind)."""
    for pid in session_pids(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run_in_session(cmd: list[str], *, cwd, env: dict, timeout: float, what: str) -> tuple[int, str]:
    """Run `cmd` in its own process session; return (exit code, stdout+stderr). Whatever it leaves
    running (a driver's Ray processes) is killed by PID afterwards; a timeout fails the test."""
    import subprocess

    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_session(proc.pid)
        out, _ = proc.communicate()
        raise AssertionError(f"{what} timed out after {timeout}s:\n{out[-6000:]}")
    finally:
        kill_session(proc.pid)
    return proc.returncode, out
