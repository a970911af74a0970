"""Test-only fault injection in trials: ``--inject-fault "trial=*,epoch=2,times=1,marker=DIR[;...]"``.

Why a module of its own: it is a testing device, not part of what a sweep does; keeping it apart
keeps the trainable readable and lets the tests use it without Ray. Pure standard library.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


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

    @classmethod
    def parse(cls, text: str) -> "list[FaultSpec]":
        specs = []
        for part in (p for p in text.split(";") if p.strip()):
            kv = dict(item.split("=", 1) for item in part.split(",") if item)
            specs.append(cls(trial=kv.get("trial", "*"), epoch=int(kv.get("epoch", 1)),
                             times=int(kv.get("times", 1)), marker=kv["marker"]))
        return specs

    def fires(self, key: str, epoch: int) -> bool:
        if epoch != self.epoch or not (self.trial == "*" or key.endswith(self.trial)):
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


class InjectedFault(RuntimeError):
    """Raised by a test's fault injection."""
