"""Keep a Tune experiment restorable after its driver is killed mid-upload.

At every experiment snapshot Tune re-uploads its experiment-level files (``tuner.pkl``,
``experiment_state-*.json``, the searcher's and search generator's state) from a driver staging
directory to the storage path, and those copies are not atomic: a driver killed during one leaves
a truncated file, and ``Tuner.restore`` then dies with ``EOFError``/``JSONDecodeError`` (CI saw a
0-byte ``tuner.pkl`` after a SIGKILL). So the driver snapshots the whole set of
those files beside the experiment once each upload has settled (:class:`StateBackup`, after every
Tune step) and :func:`repair` puts the snapshot back before a restore. Standard library only: no Ray import, so it is unit-testable.
"""

from __future__ import annotations

import json
import logging
import os
import pickletools
import re
import shutil
from dataclasses import dataclass, field

from sweeps.state import atomic_write

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


def snapshot_dir(experiment_dir: str) -> str | None:
    """The current snapshot's folder, or None when no snapshot was ever completed."""
    root = backup_dir(experiment_dir)
    try:
        with open(os.path.join(root, "CURRENT")) as fh:
            version = fh.read().strip()
    except OSError:
        return None
    path = os.path.join(root, version)
    return path if version and os.path.isdir(path) else None


def load_snapshot(experiment_dir: str) -> dict[str, bytes]:
    """The files of the current snapshot (empty when there is none)."""
    path = snapshot_dir(experiment_dir)
    if path is None:
        return {}
    return {name: data for name in _state_files(path) if (data := _read(os.path.join(path, name)))}


def _write_snapshot(experiment_dir: str, files: dict[str, bytes]) -> None:
    """A new numbered folder, then an atomic switch of ``CURRENT`` to it, then the old ones go."""
    root = backup_dir(experiment_dir)
    os.makedirs(root, exist_ok=True)
    current = snapshot_dir(experiment_dir)
    version = str(int(os.path.basename(current)) + 1 if current else 1)
    path = os.path.join(root, version)
    shutil.rmtree(path, ignore_errors=True)  # a half-written folder a kill left behind
    os.makedirs(path)
    for name, data in files.items():
        atomic_write(os.path.join(path, name), data)
    atomic_write(os.path.join(root, "CURRENT"), version.encode())
    for entry in os.scandir(root):
        if entry.is_dir() and entry.name != version:
            shutil.rmtree(entry.path, ignore_errors=True)


@dataclass
class StateBackup:
    """Snapshots one experiment's state files as a set, once an upload of them has settled.

    Called after every Tune step. A set is copied only when every file is whole and nothing
    changed since the previous call - one step of quiet means no upload is half-way, so the
    files belong to one moment (a per-file copy could pair a new experiment state with an old
    searcher state). The snapshot therefore trails Tune by at most one save.
    """

    experiment_dir: str
    _pending: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)
    _saved: dict[str, tuple[int, int]] = field(default_factory=dict, repr=False)

    def __call__(self) -> bool:
        """Snapshot the experiment's state if it changed and has settled; True if written."""
        stamps = {}
        for name in _state_files(self.experiment_dir):
            try:
                st = os.stat(os.path.join(self.experiment_dir, name))
            except OSError:
                return False
            stamps[name] = (st.st_mtime_ns, st.st_size)
        settled = stamps == self._pending
        self._pending = stamps
        if not stamps or not settled or stamps == self._saved:
            return False
        files = {name: _read(os.path.join(self.experiment_dir, name)) for name in stamps}
        if not all(data is not None and is_complete(data) for data in files.values()):
            return False
        _write_snapshot(self.experiment_dir, files)  # type: ignore[arg-type]
        self._saved = stamps
        return True


def repair(experiment_dir: str) -> list[str]:
    """Put truncated state files back from the last snapshot; returns the files changed.

    ``tuner.pkl`` never changes after the Tuner is built, so its copy is exact. A truncated
    file of a Tune session brings back that session's whole set from the snapshot (experiment,
    searcher and search-generator state of one moment, at most one save behind); whole files of
    other sessions stay. A session the snapshot does not cover (killed before its first
    snapshot) is removed, so the restore continues from the session before it. A truncated
    ``tuner.pkl`` with no snapshot raises :class:`ResumeStateError` naming the file.
    """
    def whole(name: str) -> bool:
        return is_complete(_read(os.path.join(experiment_dir, name)) or b"")

    broken = [n for n in _state_files(experiment_dir) if not whole(n)]
    if not broken:
        return []
    snapshot = load_snapshot(experiment_dir)
    changed: list[str] = []
    for name in broken:
        path = os.path.join(experiment_dir, name)
        if not os.path.exists(path) or whole(name):
            continue  # already dealt with as part of its session
        ts = _session(name)
        if ts is None:
            if name not in snapshot:
                raise ResumeStateError(
                    f"{path} is truncated ({os.path.getsize(path)} bytes) and "
                    f"{backup_dir(experiment_dir)} holds no complete copy; the experiment cannot "
                    f"be restored - move {experiment_dir} aside to start this stage afresh")
            atomic_write(path, snapshot[name])
            changed.append(name)
            log.warning("%s was truncated (a driver killed mid-upload); put back its copy from %s",
                        path, snapshot_dir(experiment_dir))
            continue
        group = [n for n in _state_files(experiment_dir) if _session(n) == ts]
        saved = {n: d for n, d in snapshot.items() if _session(n) == ts}
        if name in saved:
            for other in sorted(set(group) | set(saved)):
                target = os.path.join(experiment_dir, other)
                if other not in saved:
                    os.remove(target)
                    changed.append(other)
                elif _read(target) != saved[other]:
                    atomic_write(target, saved[other])
                    changed.append(other)
            log.warning("%s was truncated (a driver killed mid-upload); put back the state of Tune "
                        "session %s from the last snapshot, %s", path, ts,
                        snapshot_dir(experiment_dir))
        else:
            for other in group:
                os.remove(os.path.join(experiment_dir, other))
                changed.append(other)
            log.warning("%s was truncated with no complete copy; removed the state files of Tune "
                        "session %s so the restore continues from the session before it", path, ts)
    return changed


def _session(name: str) -> str | None:
    match = _SESSION_FILE.match(name)
    return match.group("ts") if match else None
