"""Process helpers for tests that start real Ray clusters and servers: free loopback ports, and
stopping by PID every process of the session a test started (never `ray stop`, which would stop
every Ray on the machine)."""

from __future__ import annotations

import os
import signal
import socket


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
