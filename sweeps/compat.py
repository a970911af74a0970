"""Every shim that reads what older versions of this project wrote — and only those.

A sweep or study is resumable for weeks: its directory (``sweep.json``, Tune's pickled state, the
Optuna journal, checkpoints) and its MLflow records outlive the code that wrote them. Each shim
below says what it reads, since when it is needed and when it can go; none of it is used by new
state. A record read through a shim warns once with a `FutureWarning` naming the version.

====================================  ==============================================  ===============
shim                                  reads                                           can go
====================================  ==============================================  ===============
`MOVED_NAMES`, `install_moved_names`  Tune state pickled before 0.2.0, which names    0.3.0
                                      classes where they were then (the single
                                      ``sweeps.tune_runner`` module before the split,
                                      then ``sweeps.callbacks`` / ``grid`` / ``search``)
`upgrade_config`                      flat HSCL keys (``omega1``, ``tau``, ...) in     0.3.0
                                      records from before methods had packages (Tune
                                      state, ``best_config.json``)
`legacy_config_hash`                  ``sweep.json`` hashes from before methods had    0.3.0
                                      packages
`without_pre_field_values`,           configuration and sweep fields added later,     never (it keeps
`without_pre_field_sweep_values`      left out of hashes at the value that reproduces  hashes stable)
                                      the old behaviour (``fusion_ffn_mult=4``;
                                      re-ranking off, no epoch budget)
`upgrade_sweep_state`                 ``sweep.json`` without a ``format`` (0.1.x)      0.3.0
`resume_settings`                     a 0.1.x sweep resumes as it was started (no     0.3.0
                                      re-rank stage, no epoch budget)
====================================  ==============================================  ===============

Pure standard library; it imports nothing of the project at module level, so every module may use it.
"""

from __future__ import annotations

import hashlib
import json
import sys
import types
import warnings
from typing import Any, Mapping

REMOVED_IN = "0.3.0"  # every shim marked "0.3.0" above goes then

# --- sweep.json ---------------------------------------------------------------------------------
SWEEP_STATE_FORMAT = 2  # 1: 0.1.x (no "format" key); 2: 0.2.0 (the hashed configuration stored; re-rank stage)


def resume_settings(state_format: int | None) -> dict[str, Any]:
    """SweepConfig fields a sweep started by an older version resumes with, whatever today's defaults:
    0.1.x sweeps had no re-rank stage and no epoch budget, so they continue as they were started."""
    return {"rerank_top": 0, "budget_epochs": 0} if state_format is not None and state_format < 2 else {}


def upgrade_sweep_state(data: dict[str, Any], path: str) -> dict[str, Any]:
    """A ``sweep.json`` of an older format, as the current format (nothing else changed)."""
    version = int(data.get("format", 1))
    if version > SWEEP_STATE_FORMAT:
        raise ValueError(f"{path}: sweep state format {version} was written by a newer mmsa-sweeps "
                         f"(this one reads up to {SWEEP_STATE_FORMAT}); upgrade the package to resume it")
    return {**data, "format": SWEEP_STATE_FORMAT}


# --- pickled names -------------------------------------------------------------------------------
# old dotted name -> name in sweeps.tune_objects (Tune unpickles callbacks, the searcher and the
# trial-dirname function by module path; see that module's docstring)
MOVED_NAMES: Mapping[str, str] = {
    # 0.1.0 after the split by concern (b84beb3)
    "sweeps.callbacks.StatusCallback": "StatusCallback",
    "sweeps.callbacks.StateBackupCallback": "StateBackupCallback",
    "sweeps.callbacks.ConsoleCallback": "ConsoleCallback",
    "sweeps.grid._trial_dirname": "trial_dirname",
    "sweeps.search.JournalSafeOptunaSearch": "JournalSafeOptunaSearch",
    # 0.1.0 before the split: one module
    "sweeps.tune_runner.StatusCallback": "StatusCallback",
    "sweeps.tune_runner.StateBackupCallback": "StateBackupCallback",
    "sweeps.tune_runner._trial_dirname": "trial_dirname",
    "sweeps.tune_runner.JournalSafeOptunaSearch": "JournalSafeOptunaSearch",
}


def install_moved_names(namespace: types.ModuleType) -> None:
    """Make every old name of `MOVED_NAMES` resolve to its object in `namespace` (sweeps.tune_objects).

    Called before ``Tuner.restore``. A module that still exists gets the old name as an attribute;
    one that does not is created as a stand-in holding only the old names. Idempotent.
    """
    import importlib

    for old, new in MOVED_NAMES.items():
        module_name, _, attr = old.rpartition(".")
        module = sys.modules.get(module_name)
        if module is None:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                module = types.ModuleType(module_name, f"stand-in for names Tune pickled before "
                                                       f"mmsa-sweeps 0.2.0 (sweeps.compat)")
                sys.modules[module_name] = module
        if not hasattr(module, attr):
            setattr(module, attr, getattr(namespace, new))


# --- configuration keys ----------------------------------------------------------------------------
# HSCL's fields were flat before methods had packages; records of then carry them for every method
LEGACY_FLAT_KEYS: Mapping[str, str] = {k: f"hscl.{k}" for k in
                                       ("omega1", "omega2", "alpha", "tau", "sim_norm", "label_info", "faithful")}
_warned: set[str] = set()


def upgrade_config(values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """A flat configuration dict read from a record, with pre-namespace keys renamed (HSCL) or dropped
    (another method's record carried HSCL's flat fields too); unchanged when it has none."""
    old = [k for k in values if k in LEGACY_FLAT_KEYS]
    if not old:
        return dict(values)
    method = str(values.get("method", "hscl"))
    out = {k: v for k, v in values.items() if k not in LEGACY_FLAT_KEYS}
    if method == "hscl":
        for key in old:
            out.setdefault(LEGACY_FLAT_KEYS[key], values[key])
    if source not in _warned:
        _warned.add(source)
        warnings.warn(f"{source}: configuration keys {sorted(old)} were written before method fields were "
                      f"namespaced (<method>.<field>); read as {[LEGACY_FLAT_KEYS[k] for k in sorted(old)]}"
                      f"{'' if method == 'hscl' else ' and ignored (another method)'}. Records this old are "
                      f"read until mmsa-sweeps {REMOVED_IN}", FutureWarning, stacklevel=2)
    return out


# --- configuration hashes ---------------------------------------------------------------------------
# Fields added after sweeps first recorded configuration hashes, each with the value that reproduces
# the behaviour from before it existed. Hashes leave such a field out at that value, so a sweep
# started earlier resumes when it sets the old behaviour explicitly, and is refused (a different
# model) under the new default.
PRE_FIELD_VALUES: Mapping[str, Any] = {"fusion_ffn_mult": 4}


def without_pre_field_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` less the `PRE_FIELD_VALUES` fields that hold their pre-field value (for hashes)."""
    return {k: v for k, v in values.items() if not (k in PRE_FIELD_VALUES and v == PRE_FIELD_VALUES[k])}


# SweepConfig fields added after 0.1.0, at the value that reproduces 0.1.0's sweep (no re-rank stage,
# no epoch budget): left out of the hash there, so a sweep started on 0.1.0 keeps its hash when resumed
# with them off (`--rerank-top 0`); with re-ranking on it is another sweep.
SWEEP_PRE_FIELD_VALUES: Mapping[str, Any] = {"rerank_top": 0, "rerank_seeds": 0, "budget_epochs": 0}


def without_pre_field_sweep_values(described: Mapping[str, Any]) -> dict[str, Any]:
    """A described SweepConfig less the fields at their pre-field value; re-ranking off (either
    count 0) leaves both re-rank fields out."""
    out = dict(described)
    if not out.get("rerank_top") or not out.get("rerank_seeds"):
        out.pop("rerank_top", None)
        out.pop("rerank_seeds", None)
    if not out.get("budget_epochs"):
        out.pop("budget_epochs", None)
    return out


# SweepConfig's fields when the configuration hash was first defined
_V1_SWEEP_FIELDS = frozenset({
    "name", "method", "data", "text_encoder", "preset", "overrides", "max_epochs", "num_samples",
    "search_lr_dropout", "sampler", "sampler_seed", "paper_start", "asha_grace_period",
    "asha_reduction_factor", "final_seeds", "smoke", "storage_path", "tracking_uri", "address", "num_cpus",
    "max_concurrent", "cpus_per_trial", "gpus_per_trial", "max_failures", "inject_fault", "verbose",
})


def legacy_config_hash(cfg: Any, space: list[dict[str, Any]], *, excluded: frozenset[str],
                       hscl_preset: Any) -> str | None:
    """The hash sweep configuration `cfg` (a `sweeps.config.SweepConfig`) had before methods had
    packages (flat HSCL names, every field of the old flat RunConfig), so that a sweep started then
    resumes now; None when the sweep uses a field that did not exist then (it cannot be that old).

    `excluded`: the fields hashes leave out (runtime options); `hscl_preset`: HSCL's preset
    RunConfig for the sweep's dataset (the old flat config carried HSCL's fields for every method).
    """
    described = without_pre_field_sweep_values(cfg.describe())
    if any(k in described for k in SWEEP_PRE_FIELD_VALUES):
        return None  # a sweep of 0.1.0's had no re-rank stage and no epoch budget
    new_fields = {k for k in described if k not in _V1_SWEEP_FIELDS and k not in excluded}
    defaults = type(cfg)().describe()
    if any(described[k] != defaults[k] for k in new_fields):
        return None
    if cfg.method not in ("hscl", "l1"):
        return None
    what = {k: v for k, v in described.items() if k in _V1_SWEEP_FIELDS and k not in excluded}
    what["overrides"] = without_pre_field_values(what["overrides"])
    base = cfg.base_run_config()
    if any(getattr(base, k) != v for k, v in PRE_FIELD_VALUES.items()):
        return None  # a field then could only have had its pre-field value
    flat = without_pre_field_values({k: v for k, v in base.to_dict().items() if "." not in k})
    hscl = base if base.method == "hscl" else hscl_preset
    for key, value in hscl.to_dict().items():
        if key.startswith("hscl."):
            flat[key[len("hscl."):]] = value
    what["base_run_config"] = flat
    what["space"] = [{**d, "name": d["name"].removeprefix("hscl.")} for d in space]
    blob = json.dumps(what, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
