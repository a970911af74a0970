"""Keep a Tune experiment restorable after its driver is killed mid-upload.

At every experiment snapshot Tune re-uploads its experiment-level files (``tuner.pkl``,
``experiment_state-*.json``, the searcher's and search generator's state) from a driver staging
directory to the storage path, and those copies are not atomic: a driver killed during one leaves
a truncated file, and ``Tuner.restore`` then dies with ``EOFError``/``JSONDecodeError`` (CI saw a
0-byte ``tuner.pkl`` after a SIGKILL). So the driver keeps the last *complete* copy of each file
beside the experiment (:func:`backup`, called after every Tune step) and :func:`repair` puts those
copies back before a restore. Standard library only: no Ray import, so it is unit-testable.
"""

from __future__ import annotations

import json
import logging
import os
import pickletools
import re
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

TUNER_FILE = "tuner.pkl"
# experiment_state-<ts>.json, searcher-state-<ts>.pkl, search_gen_state-<ts>.json, ...
_SESSION_FILE = re.compile(r"^(?P<kind>.+?)-(?P<ts>\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d)\.(json|pkl)$")


class ResumeStateError(RuntimeError):
    """An experiment's state is truncated and no complete copy exists to restore it from."""


def backup_dir(experiment_dir: str) -> str:
    """Where the complete copies live: a sibling, so Tune's own listing never sees them."""
    head, name = os.path.split(os.path.abspath(experiment_dir).rstrip(os.sep))
    return os.path.join(head, f".{name}.resume-state")


def is_state_file(name: str) -> bool:
    """The files Tune syncs down on restore (top-level ``*.json`` / ``*.pkl``)."""
    return name == TUNER_FILE or bool(_SESSION_FILE.match(name))


def is_complete(data: bytes) -> bool:
    """Whether ``data`` is a whole pickle stream / JSON document (checked without unpickling).

    Judged by content, not name: Tune writes ``search_gen_state-*.json`` as a pickle.
    """
    if not data:
        return False
    if data[:1] == b"\x80":  # pickle protocol >= 2
        try:
            last = None
            for last, _, _ in pickletools.genops(data):
                pass
        except Exception:  # truncated streams raise ValueError; garbage may raise others
            return False
        return last is not None and last.name == "STOP"
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


def _state_files(directory: str) -> list[str]:
    if not os.path.isdir(directory):
        return []
    return sorted(e.name for e in os.scandir(directory) if e.is_file() and is_state_file(e.name))


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _write_atomic(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


@dataclass
class StateBackup:
    """Copies each state file of one experiment once it is complete and changed since last time."""

    experiment_dir: str
    _seen: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)

    def __call__(self) -> list[str]:
        """Back up what changed; returns the names copied. Cheap when nothing did (a stat each)."""
        copied = []
        target = backup_dir(self.experiment_dir)
        for name in _state_files(self.experiment_dir):
            path = os.path.join(self.experiment_dir, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            stamp = (st.st_mtime_ns, st.st_size)
            if self._seen.get(name) == stamp:
                continue
            data = _read(path)
            if data is None or not is_complete(data):
                continue  # mid-upload; the next step sees the finished file
            os.makedirs(target, exist_ok=True)
            _write_atomic(os.path.join(target, name), data)
            self._seen[name] = stamp
            copied.append(name)
        return copied


def backup(experiment_dir: str) -> list[str]:
    """One-off :class:`StateBackup` pass (the callback keeps one alive to skip unchanged files)."""
    return StateBackup(experiment_dir)()


def repair(experiment_dir: str) -> list[str]:
    """Replace truncated state files by their last complete copies; returns what was changed.

    A truncated file of a Tune session with no complete copy (the driver was killed before its
    first snapshot finished) is removed together with that session's other files, so the restore
    continues from the previous session's state. A truncated ``tuner.pkl`` without a copy cannot
    be rebuilt here: that raises :class:`ResumeStateError` naming the file.
    """
    source = backup_dir(experiment_dir)
    changed: list[str] = []
    for name in _state_files(experiment_dir):
        path = os.path.join(experiment_dir, name)
        if not os.path.exists(path):
            continue  # removed below with its session
        data = _read(path)
        if data is not None and is_complete(data):
            continue
        copy = _read(os.path.join(source, name))
        if copy is not None and is_complete(copy):
            _write_atomic(path, copy)
            log.warning("%s was truncated (a driver killed mid-upload); restored the last "
                        "complete copy from %s", path, source)
            changed.append(name)
            continue
        match = _SESSION_FILE.match(name)
        if match is None:
            raise ResumeStateError(
                f"{path} is truncated ({len(data or b'')} bytes) and {source} holds no complete "
                f"copy; the experiment cannot be restored - move {experiment_dir} aside to start "
                f"this stage afresh")
        ts = match.group("ts")
        for other in _state_files(experiment_dir):
            m = _SESSION_FILE.match(other)
            if m is not None and m.group("ts") == ts:
                os.remove(os.path.join(experiment_dir, other))
                changed.append(other)
        log.warning("%s was truncated with no complete copy; removed the state files of Tune "
                    "session %s so the restore continues from the session before it", path, ts)
    return changed
