"""Typed, frozen configuration of one sweep, plus the small value types of the sweep API.

`SweepConfig` is everything `sweeps.search.run_sweep` needs: what is searched (its own fields) and
where it runs (`runtime`, a `sweeps.runtime_options.RuntimeOptions`). It is validated in
`__post_init__` (one `ValueError` listing every problem) and never mutated. `sweeps.cli` builds it
from the command line; tests build it directly. `base_run_config()` turns it into the
`mmsa_core.config.RunConfig` every trial starts from, so a typo in `overrides` fails here, in the
driver, before any trial exists.

The other dataclasses (`TrackingTarget`, `GridRun`, `GridRunResult`, `SweepResult`) are the vocabulary of `sweeps.grid.run_grid` and `run_sweep`, the "explicit list
of runs on Ray Tune" API the studies build on. This module imports no Ray, MLflow, Optuna or torch.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import statistics
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from mmsa_core.config import SYNTHETIC_SOURCES, RunConfig, dataset_preset_for
from sweeps import storage  # standard library at import
from sweeps.runtime_options import RUNTIME_FIELDS, RuntimeOptions, placement_problem

SAMPLERS: tuple[str, ...] = ("tpe", "gp", "random")  # random = MMSA's tune mode (uniform draws)
PRESETS: tuple[str, ...] = ("auto", "mosi", "mosei")
DEFAULT_FINAL_SEEDS: tuple[int, ...] = (1111, 1112, 1113, 1114, 1115)

# What --smoke changes: a sweep that finishes in about a minute on 2 CPU cores. Values the user
# sets explicitly on the command line win over these.
SMOKE_DEFAULTS: dict[str, Any] = dict(
    text_encoder="tiny", num_samples=3, max_epochs=3, final_seeds=(1111, 1112),
    asha_grace_period=1, asha_reduction_factor=2, rerank_top=1, rerank_seeds=1,
)
SMOKE_RUNTIME: dict[str, Any] = dict(max_failures=1)  # a smoke sweep's trials are retried once
SMOKE_RUN_OVERRIDES: dict[str, Any] = dict(
    synthetic_train=128, synthetic_valid=64, synthetic_test=64, batch_size=32, lr_text=1e-3,
    av_layers=1,
)
# Left out of the configuration hash: the name (it is the sweep's identity already) and every
# runtime option, so that a sweep can be resumed on other hardware.
HASH_EXCLUDED = frozenset({"name", *RUNTIME_FIELDS})


@dataclass(frozen=True)
class SweepConfig:
    """One hyper-parameter sweep: search stage (Optuna + ASHA) then a multi-seed final stage."""

    # --- what is searched ---------------------------------------------------------------------
    name: str = ""  # sweep name = sweep directory and MLflow parent run; "" -> "<method>-<data>"
    method: str = "hscl"  # a registered method (mmsa_core.methods); picks presets and search space
    data: str = "synthetic-mosi"  # MMSA pickle / converted dir, or synthetic-mosi / synthetic-mosei
    text_encoder: str = "minilm"  # minilm | tiny | a local Hugging Face directory
    preset: str = "auto"  # authors' hyper-parameters: mosi | mosei | auto (from the data)
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
    # re-ranking: the best `rerank_top` full-fidelity search configurations trained again on
    # `rerank_seeds` new seeds; the winner is the best mean validation objective (0 = off)
    rerank_top: int = 3
    rerank_seeds: int = 2
    budget_epochs: int = 0  # search trials start until all trials' epochs reach this (0 = num_samples only)

    # --- where and how it runs (not part of the configuration hash) ------------------------------
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)

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
    def reranks(self) -> bool:
        return self.rerank_top > 0 and self.rerank_seeds > 0

    def rerank_seed_values(self, search_seed: int) -> tuple[int, ...]:
        """`rerank_seeds` seeds that are neither the search trials' seed nor a final seed."""
        taken = {search_seed, *self.final_seeds}
        out: list[int] = []
        candidate = search_seed + 1000
        while len(out) < self.rerank_seeds:
            if candidate not in taken:
                out.append(candidate)
            candidate += 1
        return tuple(out)

    @property
    def sweep_dir(self) -> str:
        return storage.join(self.runtime.storage_root, self.name)

    def resolved_tracking_uri(self) -> str:
        """The explicit MLflow URI this sweep logs to (never MLflow's implicit default)."""
        return self.runtime.resolved_tracking_uri()

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
        """mosi | mosei: the preset asked for, or the one the data implies (`dataset_preset_for`)."""
        if self.preset != "auto":
            return self.preset
        return dataset_preset_for(self.data)

    def describe(self) -> dict[str, Any]:
        """JSON-able dict of every field, the runtime options flat beside the others (for
        ``search_space.json`` and the configuration hash; any password in the tracking URI redacted)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "runtime"}
        out["overrides"] = dict(self.overrides)
        out["final_seeds"] = list(self.final_seeds)
        out.update(self.runtime.describe())
        return out

    def hashed(self, space: list[dict[str, Any]]) -> dict[str, Any]:
        """What the configuration hash covers (stored in ``sweep.json`` to name what a resume changed)."""
        from sweeps.compat import without_pre_field_sweep_values, without_pre_field_values

        what = without_pre_field_sweep_values({k: v for k, v in self.describe().items() if k not in HASH_EXCLUDED})
        what["overrides"] = without_pre_field_values(what["overrides"])
        what["base_run_config"] = without_pre_field_values(self.base_run_config().to_dict())
        what["space"] = space
        return json.loads(json.dumps(what, sort_keys=True, default=str))

    def config_hash(self, space: list[dict[str, Any]]) -> str:
        """Hash of what the sweep searches (fields + base RunConfig + search space).

        Runtime options (resources, addresses, storage) are excluded, so a sweep may be resumed on
        other hardware, but never with a different space, budget or base configuration.
        """
        blob = json.dumps(self.hashed(space), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def smoke_config(**explicit: Any) -> SweepConfig:
    """A `SweepConfig` with the --smoke defaults, `explicit` values taking precedence.

    A smoke override that the method's sweep searches (l1 searches ``lr_text``) is left to the search.
    Without an explicit ``runtime`` a smoke sweep retries a failed trial once (`SMOKE_RUNTIME`).
    """
    from sweeps.spaces import SPACES

    values: dict[str, Any] = dict(SMOKE_DEFAULTS)
    values.update({k: v for k, v in explicit.items() if k != "overrides"})
    values.setdefault("runtime", RuntimeOptions(**SMOKE_RUNTIME))
    method = values.get("method", SweepConfig.method)
    searched = set(SPACES[method].names(values.get("search_lr_dropout", False))) if method in SPACES else set()
    overrides = {k: v for k, v in SMOKE_RUN_OVERRIDES.items() if k not in searched}
    overrides.update(explicit.get("overrides", {}) or {})
    values["overrides"] = overrides
    values["smoke"] = True
    return SweepConfig(**values)


def data_name(data: str) -> str:
    """The dataset name MLflow experiments are keyed by, without loading anything.

    Must agree with `MSADataset.name` (a synthetic name, or `dataset_name_for` the file: its stem, with
    its folder in front when the stem names no dataset); `sweeps.search.run_sweep` checks that it does
    once the data is loaded.
    """
    from mmsa_core.data.naming import dataset_name_for

    return data if data in SYNTHETIC_SOURCES else dataset_name_for(data)


def auto_preset(cfg: SweepConfig, audio_dim: int, vision_dim: int) -> str:
    """The preset a sweep trains with once its data is loaded: an explicit ``--preset`` as given;
    ``auto`` by the feature widths when they are MOSI's (5/20) or MOSEI's (74/35), else by the name
    (`dataset_preset_for`). The widths win over the name: ``MOSEI/unaligned_50.pkl`` is MOSEI."""
    from mmsa_core.data.naming import preset_from_widths

    if cfg.preset != "auto":
        return cfg.preset
    return preset_from_widths(audio_dim, vision_dim) or dataset_preset_for(cfg.data)


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
    for name in ("rerank_top", "rerank_seeds", "budget_epochs"):
        if getattr(c, name) < 0:
            p.append(f"{name}={getattr(c, name)} must be >= 0 (0 = off)")
    if c.budget_epochs and c.max_epochs and c.budget_epochs < c.max_epochs:
        p.append(f"budget_epochs={c.budget_epochs} is less than one trial's max_epochs={c.max_epochs}")
    if not isinstance(c.runtime, RuntimeOptions):
        p.append(f"runtime must be a RuntimeOptions, got {type(c.runtime).__name__}")
    elif storage.is_uri(c.runtime.storage_path) and not c.runtime.optuna_storage:
        p.append(f"--storage-path {c.runtime.storage_path} is a URI: pass --optuna-storage too (a journal file on a "
                 "shared POSIX path, or a database URL such as postgresql://... or sqlite:///<absolute path>); "
                 "an Optuna journal cannot be appended to in an object store")
    if c.method in SPACES:
        searched = {q.name for q in SPACES[c.method].params(c.search_lr_dropout)}
        clash = sorted(k for k in c.overrides if k in searched)
        if clash:
            p.append(f"overrides {clash} are searched by the sweep; drop them or the search")
    if isinstance(c.runtime, RuntimeOptions):
        problem = placement_problem(str(c.overrides.get("device", "auto")), c.runtime.gpus_per_trial)
        if problem:
            p.append(problem)
    if not p:
        try:
            c.base_run_config()
        except ValueError as exc:
            p.append(str(exc))
    return p


# ---------------------------------------------------------------------------------------------
# value types of the grid API (sweeps.grid.run_grid) and results


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


@dataclass
class SweepResult:
    """What `sweeps.search.run_sweep` returns (and `sweeps.console.print_result` prints)."""

    name: str
    sweep_dir: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    study_name: str
    best_config: dict[str, Any]
    best_trial_id: str
    best_objective: float
    search_trials: int
    final: list[GridRunResult] = field(default_factory=list)
    searched: dict[str, Any] = field(default_factory=dict)  # the winner's values of the searched keys
    rerank: list[dict[str, Any]] = field(default_factory=list)  # one row per re-ranked configuration
    search_best_trial_id: str = ""  # the search's own best (the winner unless re-ranking changed it)
    search_best_objective: float = float("nan")
    search_epochs: int = 0  # epochs every search trial trained, together
    budget_epochs: int = 0
    metric: str = "mae"
    model_run_id: str | None = None  # the final run whose best model is logged (artifact ``model/``)
    optuna_storage: str = ""  # the Optuna study's journal file or database URL (redacted); "" = the sweep's journal

    def summary(self) -> dict[str, dict[str, float]]:
        """Mean and std over the final seeds of every ``best/test/*`` metric."""
        rows = [r.best_test for r in self.final if r.status in ("FINISHED", "SKIPPED") and r.best_test]
        out: dict[str, dict[str, float]] = {}
        for key in sorted({k for r in rows for k in r}):
            vals = [r[key] for r in rows if key in r]
            out[key] = {"mean": statistics.fmean(vals),
                        "std": statistics.stdev(vals) if len(vals) > 1 else 0.0, "n": len(vals)}
        return out
