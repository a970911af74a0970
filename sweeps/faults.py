"""Test-only fault injection in trials: ``--inject-fault "trial=*,epoch=2,times=1,marker=DIR[;...]"``.

Kinds (``kind=``, default ``raise``), each at the end of epoch `epoch` (``epoch=0``: during the
trial's set-up, once its MLflow run is open and before training starts — where a worker killed
for memory dies):

- ``raise``: `InjectedFault` before the epoch is logged (a Python error; Tune retries the trial);
- ``hang``: the trial sleeps ``seconds=`` (default 3600) before the epoch is logged (a hang; what
  ``--trial-timeout`` is for);
- ``kill``: ``SIGKILL`` of the trial's own worker process before the epoch is logged (a dead
  worker: OOM killer, lost node);
- ``enospc``: the epoch's checkpoint write fails half-way with ``OSError(ENOSPC)`` (a full disk),
  before anything of the epoch is logged or reported.

``node=NAME`` limits a spec to trials running on a Ray node started with the label
``mmsa-fault-node=NAME`` (``ray start --labels``): a test picks the node whose trial it stops.

Why a module of its own: it is a testing device, not part of what a sweep does; keeping it apart
keeps the trainable readable and lets the tests use it without Ray. Pure standard library.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from dataclasses import dataclass

KINDS = ("raise", "hang", "kill", "enospc")


@dataclass(frozen=True)
class FaultSpec:
    """Raise `InjectedFault` in one trial at `epoch`, `times` times over its attempts (-1 = always).

    The trial is the first whose run key ends with `trial` (``*`` = any) to reach `epoch`; it
    claims the fault with a file in `marker`, which also counts the attempts, so the choice
    survives retries and restores. Several specs are separated by ``;``.
    """

    trial: str
    epoch: int
    times: int
    marker: str
    kind: str = "raise"
    seconds: float = 3600.0  # kind=hang: how long
    node: str = ""  # only on a Ray node labelled mmsa-fault-node=<node> ("" = any node)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"fault kind {self.kind!r} is not one of {list(KINDS)}")

    @classmethod
    def parse(cls, text: str) -> "list[FaultSpec]":
        specs = []
        for part in (p for p in text.split(";") if p.strip()):
            kv = dict(item.split("=", 1) for item in part.split(",") if item)
            specs.append(cls(trial=kv.get("trial", "*"), epoch=int(kv.get("epoch", 1)),
                             times=int(kv.get("times", 1)), marker=kv["marker"],
                             kind=kv.get("kind", "raise"), seconds=float(kv.get("seconds", 3600)),
                             node=kv.get("node", "")))
        return specs

    def inject(self, key: str, epoch: int) -> None:
        """At an epoch's end, before it is logged: raise / hang / kill if this spec fires."""
        if self.kind == "enospc" or not self.fires(key, epoch):
            return
        if self.kind == "hang":
            time.sleep(self.seconds)
        elif self.kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        else:
            raise InjectedFault(f"injected fault in {key} at epoch {epoch}")

    def inject_checkpoint_write(self, key: str, epoch: int, directory: str) -> None:
        """While the epoch's checkpoint is written into `directory`: a full disk (kind=enospc)."""
        if self.kind != "enospc" or not self.fires(key, epoch):
            return
        with open(os.path.join(directory, "partial.bin"), "wb") as f:
            f.write(b"\0" * 1024)
        raise OSError(errno.ENOSPC, f"No space left on device (injected in {key} at epoch {epoch})")

    def fires(self, key: str, epoch: int) -> bool:
        if epoch != self.epoch or not (self.trial == "*" or key.endswith(self.trial)):
            return False
        if self.node and not self.on_node():
            return False
        os.makedirs(self.marker, exist_ok=True)
        claim = os.path.join(self.marker, "claimed-by")
        try:
            fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            with os.fdopen(fd, "w") as f:
                f.write(key)
        except FileExistsError:
            with open(claim) as f:
                if f.read().strip() != key:
                    return False
        n = 0
        while self.times < 0 or n < self.times:
            try:
                os.close(os.open(os.path.join(self.marker, f"attempt-{n}"), os.O_CREAT | os.O_EXCL))
                return True
            except FileExistsError:
                n += 1
        return False


    def on_node(self) -> bool:
        """Whether this process runs on the Ray node labelled ``mmsa-fault-node=<node>``."""
        import ray

        return ray.get_runtime_context().get_node_labels().get(NODE_LABEL) == self.node


NODE_LABEL = "mmsa-fault-node"


class InjectedFault(RuntimeError):
    """Raised by a test's fault injection."""
