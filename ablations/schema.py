"""The ablation study as data: a validated spec, its variants, robustness block and trials.

`AblationSpec` holds only deltas from a method's paper preset (or from the best configuration of a
finished sweep); `config(variant)` builds a variant's full `RunConfig`. Parsing lives in
`ablations.parsing`, the checks that build configurations in `ablations.checks`, and what a method
offers an ablation (its loss terms, what each term needs, its replacements) in its own package
(`mmsa_core.methods.<name>`). This module imports neither torch, Ray nor MLflow.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from mmsa_core.config import DATASET_PRESETS, RunConfig
from mmsa_core.data.corruption import Corruption
from mmsa_core.methods import get_method

SPECS_DIR = Path(__file__).resolve().parent / "specs"
DEFAULT_SEEDS: tuple[int, ...] = (1111, 1112, 1113, 1114, 1115)
DEFAULT_REFERENCE = "full"
MODALITY_LETTERS = ("t", "a", "v")
PRESETS = DATASET_PRESETS
# Test-time corruptions: drop a rate r of the frames (tokens) of each listed stream, or the whole
# stream for a rate r of the samples, or ("tokens") the field's MMSA masking at rate r
# (mmsa_core.data.corruption, the single source of the kinds).
CORRUPTIBLE = ("t", "a", "v")
CORRUPTIBLE_SUBSETS = ("t", "a", "v", "ta", "tv", "av", "tav")
# Fields a spec sets in one place only: the study's method and data are top-level keys, seeds come
# from `seeds`. Inside a variant, modalities / disabled_losses / replacements have their own keys.
TOP_LEVEL_FIELDS = ("method", "data", "seed")


class AblationSpecError(ValueError):
    """Every problem of one spec, one per line, each naming the file and the variant."""

    def __init__(self, source: str, problems: Sequence[str]):
        self.source = source
        self.problems = list(problems)
        n = len(self.problems)
        head = f"invalid ablation spec {source} ({n} problem{'s' if n != 1 else ''}):"
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems)]))


@dataclass(frozen=True)
class Variant:
    """One arm of the ablation: deltas applied on top of the study's base configuration."""

    name: str
    modalities: str | None = None  # canonical subset ("t", "ta", "tv", "tav"); None = the base's
    disable: tuple[str, ...] = ()  # loss terms switched off (added to the base's disabled_losses)
    replace: tuple[tuple[str, str], ...] = ()  # (old, new) pairs of the method's replacements
    overrides: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def deltas(self) -> dict[str, Any]:
        """The variant as it appears in a spec file (only the keys it sets)."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        if self.modalities is not None:
            out["modalities"] = self.modalities
        if self.disable:
            out["disable"] = list(self.disable)
        if self.replace:
            out["replace"] = dict(self.replace)
        if self.overrides:
            out["overrides"] = dict(self.overrides)
        return out


@dataclass(frozen=True)
class Robustness:
    """Evaluation-only variants: corrupt `modalities` of the test split at each rate, per kind."""

    kinds: tuple[str, ...]
    modalities: tuple[str, ...]  # canonical subsets of "tav" ("a", "v", "av", ...)
    rates: tuple[float, ...]
    seed: int = 0  # seed of the corruption mask (the same mask for every run: a paired comparison)

    def corruptions(self) -> list[Corruption]:
        """Every (kind, modalities, rate) setting, as mmsa_core corruptions."""
        return [Corruption(kind=k, modalities=m, rate=r, seed=self.seed)
                for k in self.kinds for m in self.modalities for r in self.rates]



@dataclass(frozen=True)
class Trial:
    """One (variant, seed) pair with the configuration it trains."""

    variant: str
    seed: int
    config: RunConfig
    reference: bool

    @property
    def key(self) -> tuple[str, int]:
        return (self.variant, self.seed)


@dataclass(frozen=True)
class AblationSpec:
    """A validated spec. `configs()` / `trials()` give the configurations it trains."""

    source: str  # the file (or "<string>") — named in every error
    name: str
    method: str
    data: str
    variants: tuple[Variant, ...]
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    reference: str = DEFAULT_REFERENCE
    preset: str = "mosi"
    base_overrides: Mapping[str, Any] = field(default_factory=dict)
    base_sweep: str | None = None  # sweep name or parent run id whose best_config.json is the base
    robustness: Robustness | None = None
    description: str = ""
    resolved_base: RunConfig | None = None  # the sweep's best configuration, once resolved

    # -- configurations ----------------------------------------------------------------------------
    def variant_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variants)

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(f"{self.source}: no variant {name!r}; variants: {list(self.variant_names())}")

    def base_config(self) -> RunConfig:
        """Preset (or the resolved sweep configuration) -> method, data -> base overrides."""
        start = (self.resolved_base if self.resolved_base is not None
                 else RunConfig.paper(self.method, self.preset))
        values = {"method": self.method, "data": self.data, **self.base_overrides}
        return RunConfig.from_dict(values, base=start, source=f"{self.source}: base")

    def config(self, variant: str | Variant, *, seed: int | None = None) -> RunConfig:
        """The variant's full configuration (seed: the first of the spec's seeds by default)."""
        v = variant if isinstance(variant, Variant) else self.variant(variant)
        cfg = variant_config(self.base_config(), v, source=where(self.source, v.name))
        return cfg.replace(seed=self.seeds[0] if seed is None else seed)

    def configs(self) -> dict[str, RunConfig]:
        return {v.name: self.config(v) for v in self.variants}

    def trials(self) -> list[Trial]:
        """Every (variant, seed) pair, variant-major, in spec order."""
        out = []
        for v in self.variants:
            cfg = self.config(v)
            out += [Trial(v.name, s, cfg.replace(seed=s), v.name == self.reference) for s in self.seeds]
        return out

    def duplicate_variants(self) -> list[tuple[str, str]]:
        """Pairs of variants that would train the same configuration (wasted compute)."""
        seen: dict[str, str] = {}
        dups = []
        for name, cfg in self.configs().items():
            key = cfg.to_json()
            if key in seen:
                dups.append((seen[key], name))
            else:
                seen[key] = name
        return dups

    # -- serialisation -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The spec as data (what is logged as `ablation_spec.yaml`)."""
        base: dict[str, Any]
        if self.base_sweep is not None:
            base = {"sweep": self.base_sweep}
            if self.base_overrides:
                base["overrides"] = dict(self.base_overrides)
        else:
            base = dict(self.base_overrides)
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out.update(method=self.method, data=self.data, preset=self.preset, base=base,
                   seeds=list(self.seeds), reference=self.reference,
                   variants=[v.deltas() for v in self.variants])
        if self.robustness is not None:
            r = self.robustness
            out["robustness"] = {"kinds": list(r.kinds), "modalities": list(r.modalities),
                                 "rates": list(r.rates), "seed": r.seed}
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)

    def fingerprint(self) -> str:
        """Hash of what the study trains (configs of all variants, seeds), for tags and resume checks."""
        payload = {"configs": {k: c.to_dict() for k, c in self.configs().items()}, "seeds": list(self.seeds),
                   "reference": self.reference}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]




def where(source: str, variant: str) -> str:
    return f"{source}: variant {variant!r}"


def variant_config(base: RunConfig, v: Variant, *, source: str) -> RunConfig:
    """base -> modalities -> disable -> replace -> overrides (seed left as the base's)."""
    values: dict[str, Any] = {}
    if v.modalities is not None:
        values["modalities"] = v.modalities
    if v.disable:
        values["disabled_losses"] = tuple(dict.fromkeys((*base.disabled_losses, *v.disable)))
    method = get_method(base.method)
    for old, new in v.replace:
        r = method.replacement(old, new)
        if r is None:
            raise ValueError(f"{source}: method {base.method!r} has no replacement {old!r} -> {new!r}")
        values.update({f"{base.method}.{k}": val for k, val in r.changes.items()})
    values.update(v.overrides)
    return RunConfig.from_dict(values, base=base, source=source)
