"""The sweep directory: what makes a sweep resumable and unique, in plain files.

Layout of ``<storage_path>/<name>/``::

    sweep.json          format, study name, configuration hash, tracking URI, stages completed
    optuna_journal.log  the Optuna study (JournalFileBackend), written by the driver only
    search/             Ray Tune experiment of the search stage (Tuner.restore reads it)
    final/              Ray Tune experiment of the final stage
    final.grid.json     the final stage's run list (a grid is resumed only if it is unchanged)
    search_result.json  every search trial's objective, fidelity and configuration (all search stages)
    best_config.json    the best search configuration (also an MLflow artifact)

An extended sweep (re-run with a larger ``--num-samples`` or ``--budget-epochs``, `extension_of`) adds
``search-ext<k>/`` (one more Tune experiment on the same Optuna study), ``<stage>.result.json`` per
search stage, and re-ranks and retrains under new grid names when the winner changes.

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
SEARCH_RESULT_FILE = "search_result.json"  # every search trial's objective, fidelity and configuration
# The search's extent: a resume may raise these (extending a sweep), never lower them. Every other
# hashed field fixes what the finished trials mean, so a change to it is a new sweep.
EXTENSIBLE_FIELDS = ("num_samples", "budget_epochs")


class SweepStateError(RuntimeError):
    """The sweep directory cannot be used as asked (changed configuration, unwritable path)."""


class DatasetChangedError(SweepStateError, ValueError):
    """A resumed sweep or study would train on other data than the runs it recorded (another file,
    or the built-in synthetic data at other split sizes): refused before anything runs (exit 2)."""


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
    # one record per extension, oldest first: {"stage": "search-ext<k>", "from": {...}, "to": {...},
    # "previous_winner": trial id or None, "created": ..., "added": {"num_samples", "budget_epochs"}}
    extensions: list[dict[str, Any]] = field(default_factory=list)
    format: int = SWEEP_STATE_FORMAT  # of this file (sweeps.compat reads older ones)
    path: str = ""  # the sweep directory (not stored)

    @property
    def journal_path(self) -> str:
        return storage.join(self.path, JOURNAL_FILE)

    def search_stages(self) -> list[str]:
        """The search stages' Tune experiment names, in order: ``search``, then one per extension."""
        return ["search", *(e["stage"] for e in self.extensions)]

    def final_key_owner(self) -> str | None:
        """The search trial whose final runs hold the plain ``final-seed<s>`` keys: the winner before
        the first extension that had one (None: no final stage has run yet, the keys are free)."""
        return next((e["previous_winner"] for e in self.extensions if e.get("previous_winner")), None)

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
        growth = extension_of(state.config, config) if state.config_hash != config_hash else None
        if growth is not None:
            extend(state, growth, config_hash=config_hash, config=config)
        if state.config_hash != config_hash:
            changed = changed_fields(state.config, config)
            differ = differing_fields(state.config, config)
            if differ and differ <= set(EXTENSIBLE_FIELDS):  # only the extent, and not larger: not an extension
                raise SweepStateError(
                    f"sweep {name!r} in {sweep_dir}: {', '.join(changed)}: "
                    + "/".join(f"--{f.replace('_', '-')}" for f in EXTENSIBLE_FIELDS)
                    + " may only grow when a sweep is re-run (that extends its search; 0 = no epoch budget "
                      "cannot follow a budget); re-run with the values it was started with, or larger ones")
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


def differing_fields(before: dict[str, Any] | None, now: dict[str, Any] | None) -> set[str]:
    """The top-level fields of two hashed configurations that differ (none when either is unknown)."""
    if not before or not now:
        return set()
    return {k for k in set(before) | set(now) if before.get(k) != now.get(k)}


def extension_of(before: dict[str, Any] | None, now: dict[str, Any] | None) -> dict[str, Any] | None:
    """``{"from": {...}, "to": {...}}`` when `now` differs from `before` only by a larger search extent
    (`EXTENSIBLE_FIELDS`: more trials, a larger epoch budget, or a budget where there was none);
    None otherwise (no change, another field changed, or a value shrank)."""
    differ = differing_fields(before, now)
    if not differ or not differ <= set(EXTENSIBLE_FIELDS):
        return None
    for key in differ:  # a field at its default may be absent (None): no budget is 0
        old, new = (0 if v is None else v for v in (before.get(key), now.get(key)))
        if not isinstance(old, int) or not isinstance(new, int) or new < old:
            return None
        if key == "budget_epochs" and old and not new:  # dropping the budget is not a larger one
            return None
    return {"from": {k: before.get(k) for k in EXTENSIBLE_FIELDS}, "to": {k: now.get(k) for k in EXTENSIBLE_FIELDS}}


def extend(state: SweepState, growth: dict[str, Any], *, config_hash: str, config: dict[str, Any] | None) -> None:
    """Record an extension of `state`'s sweep: one more search stage on the same Optuna study; the
    re-rank and final stages run again (what finished before is not trained again)."""
    result = storage.join(state.path, SEARCH_RESULT_FILE)
    if "search" in state.stages_done and storage.exists(result):
        done = read_json(result)
        room = extension_room(growth["to"], trials=done["trials"], epochs=done["epochs"])
        if room is None:
            raise SweepStateError(
                f"sweep {state.name!r} in {state.path}: nothing to extend: its search already ran {done['trials']} "
                f"trials and {done['epochs']} epochs, which --num-samples {growth['to']['num_samples']}"
                + (f" / --budget-epochs {growth['to']['budget_epochs']}" if growth["to"].get("budget_epochs") else "")
                + " does not exceed; raise --num-samples"
                + (" and --budget-epochs" if growth["to"].get("budget_epochs") else ""))
    winner = None
    best = storage.join(state.path, BEST_CONFIG_FILE)
    if storage.exists(best):  # the selection the earlier final stage trained, if it got that far
        winner = read_json(best).get("trial_id")
    state.extensions.append({"stage": f"search-ext{len(state.extensions) + 1}", **growth,
                             "previous_winner": winner,
                             "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
    state.config_hash, state.config = config_hash, config
    state.stages_done = []
    state.save()


def extension_room(to: dict[str, Any], *, trials: int, epochs: int) -> dict[str, int] | None:
    """What one more search stage may add after `trials` trials and `epochs` epochs, to reach the
    extent `to`: ``{"num_samples": cap, "budget_epochs": epochs or 0}``; None when nothing is left."""
    more = int(to["num_samples"]) - trials
    budget = int(to.get("budget_epochs") or 0)
    left = budget - epochs if budget else 0
    if more <= 0 or (budget and left <= 0):
        return None
    return {"num_samples": more, "budget_epochs": left}


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
