"""The sweep directory: what makes a sweep resumable and unique, in plain files.

Layout of ``<storage_path>/<name>/``::

    sweep.json          format, study name, configuration hash, tracking URI, stages completed
    optuna_journal.log  the Optuna study (JournalFileBackend), written by the driver only
    search/             Ray Tune experiment of the search stage (Tuner.restore reads it)
    final/              Ray Tune experiment of the final stage
    final.grid.json     the final stage's run list (a grid is resumed only if it is unchanged)
    best_config.json    the best search configuration (also an MLflow artifact)

`open_sweep_state` creates ``sweep.json`` on the first run and, on a re-run, refuses a
configuration whose hash differs (saying how to start a new sweep). The study name is
``<name>-<8 hex>``, drawn once and stored here, so a resume reuses the study and a new ``--name``
never warm-starts from an old sweep's trials. `repair_journal` trims a half-written last line
(optuna#5138) before Optuna reads the journal. The directory may be a URI (``s3://...``): every
file goes through `sweeps.storage`; the journal then lives where ``--optuna-storage`` says.
Standard library at import.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import subprocess
import uuid
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sweeps import storage
from sweeps.compat import SWEEP_STATE_FORMAT, upgrade_sweep_state
from sweeps.preflight import redact_uri

STATE_FILE = "sweep.json"
JOURNAL_FILE = "optuna_journal.log"
BEST_CONFIG_FILE = "best_config.json"


class SweepStateError(RuntimeError):
    """The sweep directory cannot be used as asked (changed configuration, unwritable path)."""


@dataclass
class SweepState:
    name: str
    study_name: str
    config_hash: str
    tracking_uri: str
    created: str
    stages_done: list[str] = field(default_factory=list)  # "search", "rerank", "final"
    parent_run_id: str | None = None
    config: dict[str, Any] | None = None  # what the hash covers, to name the fields a resume changed
    format: int = SWEEP_STATE_FORMAT  # of this file (sweeps.compat reads older ones)
    path: str = ""  # the sweep directory (not stored)

    @property
    def journal_path(self) -> str:
        return storage.join(self.path, JOURNAL_FILE)

    def mark_done(self, stage: str) -> None:
        if stage not in self.stages_done:
            self.stages_done.append(stage)
            self.save()

    def save(self) -> None:
        data = {k: v for k, v in asdict(self).items() if k != "path"}
        atomic_write(storage.join(self.path, STATE_FILE), json.dumps(data, indent=2) + "\n")


def ensure_dir(path: str) -> None:
    """Create `path` (and parents) or raise SweepStateError naming it."""
    try:
        storage.ensure_dir(path)
    except OSError as exc:
        raise SweepStateError(f"storage path {path!r} cannot be created or written: {exc}") from None


def peek_format(sweep_dir: str) -> int | None:
    """The format of an existing ``sweep.json`` (None when the sweep is new): older sweeps resume
    with the settings of their version (`sweeps.compat.resume_settings`)."""
    path = storage.join(sweep_dir, STATE_FILE)
    if not storage.exists(path):
        return None
    return int(read_json(path).get("format", 1))


def open_sweep_state(sweep_dir: str, *, name: str, config_hash: str, tracking_uri: str,
                     legacy_hashes: tuple[str | None, ...] = (), config: dict[str, Any] | None = None) -> SweepState:
    """Load the sweep's state, or create it; refuse a resume with another configuration.

    `legacy_hashes`: what the same configuration hashed to under an older hash definition; a state
    recorded with one of them is the same sweep, and is re-recorded under `config_hash`. `config`:
    what the hash covers, stored so that a refused resume names the fields that changed.
    """
    ensure_dir(sweep_dir)
    path = storage.join(sweep_dir, STATE_FILE)
    if storage.exists(path):
        data = read_json(path)
        upgraded = upgrade_sweep_state(data, path)
        state = SweepState(**upgraded, path=sweep_dir)
        if upgraded != data:
            state.save()
        if state.config_hash != config_hash and state.config_hash in {h for h in legacy_hashes if h}:
            state.config_hash = config_hash
            state.config = config
            state.save()
        if state.config_hash != config_hash:
            changed = changed_fields(state.config, config)
            what = (f"changed: {'; '.join(changed)}" if changed else
                    f"hash {state.config_hash}, now {config_hash}; a sweep started before the fusion "
                    "feed-forward width became d_t (2026-12) also needs --set fusion_ffn_mult=4")
            raise SweepStateError(
                f"sweep {name!r} in {sweep_dir} was started with a different configuration ({what}): re-run "
                f"it with the arguments it was started with to resume it, or start a new sweep with a new --name")
        if state.config is None and config is not None:
            state.config = config
            state.save()
        if state.tracking_uri != redact_uri(tracking_uri):
            raise SweepStateError(
                f"sweep {name!r} in {sweep_dir} logs to MLflow at {state.tracking_uri!r}, not "
                f"{redact_uri(tracking_uri)!r}: resume it with --tracking-uri {state.tracking_uri}, or start a "
                f"new sweep with a new --name")
        return state
    state = SweepState(name=name, study_name=f"{name}-{uuid.uuid4().hex[:8]}",
                       config_hash=config_hash, tracking_uri=redact_uri(tracking_uri),  # no password on disk
                       created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                       config=config, path=sweep_dir)
    state.save()
    return state


def changed_fields(before: dict[str, Any] | None, now: dict[str, Any] | None) -> list[str]:
    """``field old -> new`` for every field that differs (nested dicts by their keys)."""
    if not before or not now:
        return []
    out = []
    for key in sorted(set(before) | set(now)):
        a, b = before.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{key}.{c}" for c in changed_fields(a, b)]
        elif a != b and json.dumps(a, sort_keys=True, default=str) != json.dumps(b, sort_keys=True, default=str):
            out.append(f"{key} {json.dumps(a, default=str)} -> {json.dumps(b, default=str)}")
    return out


def repair_journal(path: str) -> bool:
    """Trim a journal whose last line is incomplete; keep the fragment beside it; warn.

    Optuna appends one JSON line per operation. A crash or a full disk mid-write leaves a last
    line without its newline, after which every append and `load_study` fails (optuna#5138).
    Returns True when something was trimmed.
    """
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return False
    with open(path, "rb") as f:
        data = f.read()
    if data.endswith(b"\n"):
        return False
    cut = data.rfind(b"\n") + 1  # 0 when there is no complete line at all
    fragment = data[cut:]
    side = f"{path}.fragment-{_dt.datetime.now().strftime('%Y%m%dT%H%M%S')}"
    with open(side, "wb") as f:
        f.write(fragment)
    with open(path, "r+b") as f:
        f.truncate(cut)
        f.flush()
        os.fsync(f.fileno())
    warnings.warn(f"Optuna journal {path} ended in a half-written line ({len(fragment)} bytes); "
                  f"trimmed it to its last complete line and kept the fragment in {side}",
                  RuntimeWarning, stacklevel=2)
    return True


def write_json(path: str, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str) -> Any:
    return json.loads(storage.read_text(path))


def atomic_write(path: str, data: str | bytes) -> None:
    """Write a whole file (a local path or a URI, `sweeps.storage.write`): a reader never sees half a file."""
    storage.write(path, data)


def code_version(repo_root: str | None = None) -> str:
    """``git:<sha>[+dirty]`` when the code is a git checkout, else ``<version>+src.<hash>``.

    Under ``ray job submit`` the working directory arrives without ``.git``; the content hash of
    the Python sources still identifies the code exactly.
    """
    root = Path(repo_root or Path(__file__).absolute().parent.parent)
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10)
        if sha.returncode == 0 and sha.stdout.strip():
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                   cwd=root, capture_output=True, text=True, timeout=10)
            return f"git:{sha.stdout.strip()}" + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    digest = hashlib.sha256()
    for pkg in ("mmsa_core", "sweeps"):
        for file in sorted((root / pkg).rglob("*.py")):
            digest.update(str(file.relative_to(root)).encode())
            digest.update(file.read_bytes())
    try:
        from mmsa_core import __version__
    except ImportError:  # pragma: no cover
        __version__ = "0"
    return f"{__version__}+src.{digest.hexdigest()[:12]}"
