"""Typed, frozen configuration of one sweep, plus the small value types of the sweep API.

`SweepConfig` is everything `sweeps.run_sweep` needs; it is validated in `__post_init__` (one
`ValueError` listing every problem) and never mutated. `hscl.py` builds it from the command line;
tests and the ablations package build it directly. `base_run_config()` turns it into the
`mmsa_core.config.RunConfig` every trial starts from, so a typo in `overrides` fails here, in the
driver, before any trial exists.

The other dataclasses (`TrialResources`, `TrackingTarget`, `GridRun`, `GridRunResult`) are the
vocabulary of `sweeps.tune_runner.run_grid`, the reusable "explicit list of runs on Ray Tune" API
the ablations package builds on. This module imports no Ray, MLflow, Optuna or torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from mmsa_core.config import SYNTHETIC_SOURCES, PRE_FIELD_VALUES, RunConfig, canonical_key, without_pre_field_values

SAMPLERS: tuple[str, ...] = ("tpe", "gp", "random")  # random = MMSA's tune mode (uniform draws)
PRESETS: tuple[str, ...] = ("auto", "mosi", "mosei")
DEFAULT_FINAL_SEEDS: tuple[int, ...] = (1111, 1112, 1113, 1114, 1115)

# What --smoke changes: a sweep that finishes in about a minute on 2 CPU cores. Values the user
# sets explicitly on the command line win over these.
SMOKE_DEFAULTS: dict[str, Any] = dict(
    text_encoder="tiny", num_samples=3, max_epochs=3, final_seeds=(1111, 1112),
    asha_grace_period=1, asha_reduction_factor=2, max_failures=1,
)
SMOKE_RUN_OVERRIDES: dict[str, Any] = dict(
    synthetic_train=128, synthetic_valid=64, synthetic_test=64, batch_size=32, lr_text=1e-3,
    av_layers=1,
)

# Fields of SweepConfig that say *where/how* a sweep runs, not *what* it searches: they are left out
# of the configuration hash, so a sweep can be resumed on other hardware.
_RUNTIME_FIELDS = frozenset({
    "name", "storage_path", "tracking_uri", "address", "num_cpus", "max_concurrent",
    "cpus_per_trial", "gpus_per_trial", "max_failures", "inject_fault", "verbose",
    # a time guard like max_failures: a resume on slower hardware may need a longer one
    "trial_timeout",
})


# SweepConfig's fields when the configuration hash was first defined (legacy_config_hash)
_V1_SWEEP_FIELDS = frozenset({
    "name", "method", "data", "text_encoder", "preset", "overrides", "max_epochs", "num_samples",
    "search_lr_dropout", "sampler", "sampler_seed", "paper_start", "asha_grace_period",
    "asha_reduction_factor", "final_seeds", "smoke", "storage_path", "tracking_uri", "address", "num_cpus",
    "max_concurrent", "cpus_per_trial", "gpus_per_trial", "max_failures", "inject_fault", "verbose",
})


def resolve_tracking_uri(tracking_uri: str, storage_path: str) -> str:
    """`tracking_uri`, else $MLFLOW_TRACKING_URI, else ``sqlite:///<storage_path>/mlflow.db``.

    Always explicit (sweeps.md: MLflow's implicit default flips to ./mlruns when one exists); the
    sweeps and the ablations share this rule so one store holds both by default.
    """
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri:
        root = os.path.abspath(os.path.expanduser(storage_path))
        uri = "sqlite:///" + os.path.join(root, "mlflow.db")
    return uri


@dataclass(frozen=True)
class SweepConfig:
    """One hyper-parameter sweep: search stage (Optuna + ASHA) then a multi-seed final stage."""

    # --- what is searched ---------------------------------------------------------------------
    name: str = ""  # sweep name = sweep directory and MLflow parent run; "" -> "<method>-<data>"
    method: str = "hscl"  # a registered method (mmsa_core.methods); picks presets and search space
    data: str = "synthetic-mosi"  # MMSA pickle / converted dir, or synthetic-mosi / synthetic-mosei
    text_encoder: str = "minilm"  # minilm | tiny | a local Hugging Face directory
    preset: str = "auto"  # authors' hyper-parameters: mosi | mosei | auto (from the data name)
    overrides: Mapping[str, Any] = field(default_factory=dict)  # RunConfig fields (--set k=v)
    max_epochs: int = 0  # 0 = the preset's (20)
    num_samples: int = 32  # search trials
    search_lr_dropout: bool = False  # also search lr_text, lr_other, dropout
    sampler: str = "tpe"  # tpe (seeded, multivariate, constant liar) | gp | random (for comparison)
    sampler_seed: int = 0
    paper_start: bool = True  # the first trial evaluates the preset's own loss weights
    asha_grace_period: int = 4  # epochs every trial gets before ASHA may stop it
    asha_reduction_factor: int = 3
    final_seeds: tuple[int, ...] = DEFAULT_FINAL_SEEDS
    smoke: bool = False  # recorded as a tag; SMOKE_DEFAULTS are applied by `smoke_config`

    # --- where and how it runs (not part of the configuration hash) ------------------------------
    storage_path: str = "runs/sweeps"  # sweep dirs live in <storage_path>/<name>; shared on clusters
    tracking_uri: str = ""  # "" -> $MLFLOW_TRACKING_URI -> sqlite:///<storage_path>/mlflow.db
    address: str = ""  # Ray address; "" -> $RAY_ADDRESS -> start a local Ray
    num_cpus: int = 0  # CPUs of a local Ray (0 = all); ignored when connecting to a cluster
    max_concurrent: int = 0  # 0 = as many trials as resources allow
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0  # fractions share a GPU; each trial's CUDA memory is capped to it
    max_failures: int = 2  # retries per trial, each from its last checkpoint
    inject_fault: str = ""  # testing only: see sweeps.tune_runner.FaultSpec
    trial_timeout: float = 0.0  # seconds one trial attempt may run (a hang is stopped); 0 = no limit
    verbose: int = 1  # Ray Tune console verbosity (0-3)

    def __post_init__(self) -> None:
        object.__setattr__(self, "overrides", dict(self.overrides))
        object.__setattr__(self, "final_seeds", tuple(int(s) for s in self.final_seeds))
        if not self.name:
            object.__setattr__(self, "name", f"{self.method}-{data_name(self.data)}")
        problems = _problems(self)
        if problems:
            raise ValueError("invalid sweep configuration: " + "; ".join(problems))

    # ------------------------------------------------------------------------------------------
    def replace(self, **changes: Any) -> "SweepConfig":
        return dataclasses.replace(self, **changes)

    @property
    def sweep_dir(self) -> str:
        return os.path.join(os.path.abspath(os.path.expanduser(self.storage_path)), self.name)

    def resolved_tracking_uri(self) -> str:
        """The explicit MLflow URI this sweep logs to (never MLflow's implicit default)."""
        return resolve_tracking_uri(self.tracking_uri, self.storage_path)

    def resolved_address(self) -> str:
        return self.address or os.environ.get("RAY_ADDRESS", "")

    def base_run_config(self) -> RunConfig:
        """The RunConfig every trial starts from: preset + encoder/data/epochs + overrides."""
        base = RunConfig.paper(self.method, self.dataset_preset)
        values: dict[str, Any] = {"data": self.data, "text_encoder": self.text_encoder}
        if self.max_epochs:
            values["max_epochs"] = self.max_epochs
        values.update(self.overrides)
        return RunConfig.from_dict(values, base=base, source="sweep configuration")

    @property
    def dataset_preset(self) -> str:
        """mosi | mosei: the preset asked for, or the one the data's name implies."""
        if self.preset != "auto":
            return self.preset
        return "mosei" if "mosei" in data_name(self.data).lower() else "mosi"

    def describe(self) -> dict[str, Any]:
        """JSON-able dict of every field (for sweep.json and the MLflow parent run)."""
        from sweeps.preflight import redact_uri  # pure standard library

        out = dataclasses.asdict(self)
        out["tracking_uri"] = redact_uri(self.tracking_uri)  # never record a password
        out["overrides"] = dict(self.overrides)
        out["final_seeds"] = list(self.final_seeds)
        return out

    def config_hash(self, space: list[dict[str, Any]]) -> str:
        """Hash of what the sweep searches (fields + base RunConfig + search space).

        Runtime fields (resources, addresses, storage) are excluded, so a sweep may be resumed on
        other hardware, but never with a different space, budget or base configuration.
        """
        what = {k: v for k, v in self.describe().items() if k not in _RUNTIME_FIELDS}
        what["overrides"] = without_pre_field_values(what["overrides"])
        what["base_run_config"] = without_pre_field_values(self.base_run_config().to_dict())
        what["space"] = space
        blob = json.dumps(what, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


    def legacy_config_hash(self, space: list[dict[str, Any]]) -> str | None:
        """The hash this sweep had before methods had packages (flat HSCL names, every field of the
        old flat RunConfig), so that a sweep started then resumes now; None when the sweep uses a
        field that did not exist then (it cannot have been started before)."""
        described = self.describe()
        new_fields = {k for k in described if k not in _V1_SWEEP_FIELDS and k not in _RUNTIME_FIELDS}
        defaults = SweepConfig().describe()
        if any(described[k] != defaults[k] for k in new_fields):
            return None
        if self.method not in ("hscl", "l1"):
            return None
        what = {k: v for k, v in described.items() if k in _V1_SWEEP_FIELDS and k not in _RUNTIME_FIELDS}
        what["overrides"] = without_pre_field_values(what["overrides"])
        base = self.base_run_config()
        if any(getattr(base, k) != v for k, v in PRE_FIELD_VALUES.items()):
            return None  # a field then could only have had its pre-field value
        flat = without_pre_field_values({k: v for k, v in base.to_dict().items() if "." not in k})
        hscl = base if base.method == "hscl" else RunConfig.paper("hscl", self.dataset_preset)
        for key, value in hscl.to_dict().items():  # the old flat config had HSCL's fields for every method
            if key.startswith("hscl."):
                flat[key[len("hscl."):]] = value
        what["base_run_config"] = flat
        what["space"] = [{**d, "name": d["name"].removeprefix("hscl.")} for d in space]
        blob = json.dumps(what, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def smoke_config(**explicit: Any) -> SweepConfig:
    """A `SweepConfig` with the --smoke defaults, `explicit` values taking precedence.

    A smoke override that the method's sweep searches (l1 searches ``lr_text``) is left to the search.
    """
    from sweeps.spaces import SPACES

    values: dict[str, Any] = dict(SMOKE_DEFAULTS)
    values.update({k: v for k, v in explicit.items() if k != "overrides"})
    method = values.get("method", SweepConfig.method)
    searched = set(SPACES[method].names(values.get("search_lr_dropout", False))) if method in SPACES else set()
    overrides = {k: v for k, v in SMOKE_RUN_OVERRIDES.items() if k not in searched}
    overrides.update(explicit.get("overrides", {}) or {})
    values["overrides"] = overrides
    values["smoke"] = True
    return SweepConfig(**values)


def data_name(data: str) -> str:
    """The dataset name MLflow experiments are keyed by, without loading anything.

    Must agree with `MSADataset.name` (a synthetic name, or the file's / directory's stem);
    `sweeps.tune_runner` checks that it does once the data is loaded.
    """
    if data in SYNTHETIC_SOURCES:
        return data
    base = os.path.basename(os.path.normpath(data))
    stem, ext = os.path.splitext(base)
    return stem if ext else base


def _problems(c: SweepConfig) -> list[str]:
    from sweeps.spaces import SPACES  # derived from the method registry (pure data)

    p: list[str] = []
    if not c.name or any(ch in c.name for ch in "/\\ \t\n") or c.name.startswith("."):
        p.append(f"name={c.name!r} must be a non-empty directory name without slashes or spaces")
    if c.method not in SPACES:
        p.append(f"method={c.method!r} is not a registered method; known: {sorted(SPACES)}")
    if c.preset not in PRESETS:
        p.append(f"preset={c.preset!r} must be one of {list(PRESETS)}")
    if c.sampler not in SAMPLERS:
        p.append(f"sampler={c.sampler!r} must be one of {list(SAMPLERS)}")
    if c.num_samples < 1:
        p.append(f"num_samples={c.num_samples} must be >= 1")
    if c.max_epochs < 0:
        p.append(f"max_epochs={c.max_epochs} must be >= 0 (0 = the preset's)")
    if c.asha_grace_period < 1:
        p.append(f"asha_grace_period={c.asha_grace_period} must be >= 1")
    if c.asha_reduction_factor < 2:
        p.append(f"asha_reduction_factor={c.asha_reduction_factor} must be >= 2")
    if not c.final_seeds:
        p.append("final_seeds must name at least one seed")
    if len(set(c.final_seeds)) != len(c.final_seeds):
        p.append(f"final_seeds={list(c.final_seeds)} has duplicates")
    if c.max_concurrent < 0:
        p.append(f"max_concurrent={c.max_concurrent} must be >= 0 (0 = no limit)")
    if c.num_cpus < 0:
        p.append(f"num_cpus={c.num_cpus} must be >= 0")
    if not c.cpus_per_trial > 0:
        p.append(f"cpus_per_trial={c.cpus_per_trial} must be > 0")
    p.extend(gpu_fraction_problems(c.gpus_per_trial))
    if c.max_failures < 0:
        p.append(f"max_failures={c.max_failures} must be >= 0")
    if not (math.isfinite(c.trial_timeout) and c.trial_timeout >= 0):
        p.append(f"trial_timeout={c.trial_timeout} must be >= 0 seconds (0 = no limit)")
    if c.method in SPACES:
        searched = {q.name for q in SPACES[c.method].params(c.search_lr_dropout)}
        clash = sorted(k for k in c.overrides if canonical_key(c.method, k) in searched)
        if clash:
            p.append(f"overrides {clash} are searched by the sweep; drop them or the search")
    if not p:
        try:
            c.base_run_config()
        except ValueError as exc:
            p.append(str(exc))
    uri = c.tracking_uri
    if uri and not (uri.startswith("sqlite:///") or uri.startswith("http://")
                    or uri.startswith("https://") or uri.startswith("databricks")):
        p.append(f"tracking_uri={uri!r}: use sqlite:///<absolute path> or http(s)://host:port")
    return p


def gpu_fraction_problems(gpus: float) -> list[str]:
    """GPU shares must be whole GPUs or fractions that divide one GPU evenly (1/2, 1/3, 1/4, ...)."""
    if gpus < 0:
        return [f"gpus_per_trial={gpus} must be >= 0"]
    if 0 < gpus < 1:
        k = round(1 / gpus)
        if not math.isclose(k * gpus, 1.0, rel_tol=1e-6):
            return [f"gpus_per_trial={gpus} must divide one GPU evenly (1/k: 0.5, 0.25, ...)"]
    elif gpus > 1 and not float(gpus).is_integer():
        return [f"gpus_per_trial={gpus} above 1 must be a whole number"]
    return []


# ---------------------------------------------------------------------------------------------
# value types of the grid API (sweeps.tune_runner.run_grid)


@dataclass(frozen=True)
class TrialResources:
    """Resources of one trial. `gpu` may be a fraction (several trials share a GPU)."""

    cpu: float = 1.0
    gpu: float = 0.0

    def __post_init__(self) -> None:
        problems = gpu_fraction_problems(self.gpu)
        if not self.cpu > 0:
            problems.append(f"cpu={self.cpu} must be > 0")
        if problems:
            raise ValueError("invalid trial resources: " + "; ".join(problems))


@dataclass(frozen=True)
class TrackingTarget:
    """Where trials log: an MLflow store, experiment and parent run, plus tags for every child."""

    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    tags: Mapping[str, str] = field(default_factory=dict)  # e.g. method, dataset, sweep_name


@dataclass(frozen=True)
class GridRun:
    """One explicit run of a grid: a unique key (idempotent MLflow child), its config and tags.

    `key` identifies the run across restarts (e.g. ``"final-seed1111"``,
    ``"ablation-no_sim-seed1112"``); `tags` are added to the child run (``stage``, ``ablation``,
    ``reference``, ...); ``seed`` is always tagged from `config.seed`.
    """

    key: str
    config: RunConfig
    tags: Mapping[str, str] = field(default_factory=dict)
    name: str = ""  # MLflow run name; "" -> key


@dataclass
class GridRunResult:
    """What one grid run produced (also filled for runs skipped as already FINISHED)."""

    key: str
    run_id: str | None  # MLflow child run id
    status: Literal["FINISHED", "FAILED", "KILLED", "SKIPPED"]  # SKIPPED = FINISHED before
    best_epoch: int | None = None
    epochs_run: int | None = None
    best_valid: dict[str, float] = field(default_factory=dict)
    best_test: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # last reported Tune metrics
    checkpoint_path: str | None = None  # last checkpoint (holds the best-validation weights)
    error: str | None = None
