"""Ablation specs: a YAML file that says which parts of a method to switch off, and with which seeds.

A spec holds only deltas from a named preset (or from the best configuration of a finished sweep):

    name: hscl-modalities              # study name (default: the file's stem)
    method: hscl
    data: synthetic-mosi               # as the sweep's --data
    preset: mosi                       # authors' hyper-parameters for MOSI or MOSEI (default mosi)
    base: {text_encoder: minilm}       # overrides for every variant, or {sweep: NAME_OR_PARENT_RUN_ID}
    seeds: [1111, 1112, 1113, 1114, 1115]
    reference: full                    # the variant every other one is compared with
    variants:
      - name: full
      - name: text_only
        modalities: t                  # subset of t, a, v (text is always used)
      - name: no_fusion
        disable: [supcr_fusion]        # loss terms switched off, by mmsa_core's names
      - name: no_label_info
        replace: {supcr: infonce}      # "without label information"
      - name: small_tau
        overrides: {tau: 0.1}          # any RunConfig field
    robustness:                        # test-time corruption of the trained reference models
      kinds: [frames, stream]
      modalities: [a, v, av]
      rates: [0.0, 0.25, 0.5]

`load_spec(path)` parses and validates a file; every problem is collected into one
`AblationSpecError` whose lines each name the file and the variant, and list the valid names.
Validation builds every variant's full `RunConfig`, so an impossible combination (a fusion loss with
no stream to fuse, InfoNCE with no contrastive term left) fails here, not mid-run. This module
imports neither torch, Ray nor MLflow.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from mmsa_core.config import HSCL_LOSS_TERMS, MODALITY_SUBSETS, RunConfig
from mmsa_core.data.corruption import CORRUPTION_KINDS, Corruption
from mmsa_core.objectives import METHODS, active_terms, possible_terms

__all__ = [
    "AblationSpec", "AblationSpecError", "Robustness", "Trial", "Variant", "DEFAULT_SEEDS",
    "SPECS_DIR", "CORRUPTION_KINDS", "REPLACEMENTS", "load_spec", "parse_spec", "shipped_specs",
]

SPECS_DIR = Path(__file__).resolve().parent / "specs"
DEFAULT_SEEDS: tuple[int, ...] = (1111, 1112, 1113, 1114, 1115)
DEFAULT_REFERENCE = "full"
MODALITY_LETTERS = ("t", "a", "v")
PRESETS = ("mosi", "mosei")
# Test-time corruptions: drop a rate r of the frames (tokens) of each listed stream, or the whole
# stream for a rate r of the samples (mmsa_core.data.corruption, the single source of the kinds).
CORRUPTIBLE = ("t", "a", "v")
CORRUPTIBLE_SUBSETS = ("t", "a", "v", "ta", "tv", "av", "tav")
# `replace: {old: new}` -> the RunConfig change it makes. "Without label information" (hscl.md §5):
# SupCR is replaced by the unsupervised multi-view InfoNCE on the same views.
REPLACEMENTS: Mapping[tuple[str, str], Mapping[str, Any]] = {("supcr", "infonce"): {"label_info": "infonce"}}
CONTRASTIVE_TERMS = ("supcr_ta", "supcr_tv", "supcr_fusion")
# Fields a spec sets in one place only: the study's method and data are top-level keys, seeds come
# from `seeds`. Inside a variant, modalities / disabled_losses / label_info have their own keys.
_TOP_LEVEL_FIELDS = ("method", "data", "seed")
# Fields that decide the dataset arrays (mmsa_core.trainer.load_run_data): every variant of a study
# trains on one shared dataset, so they belong in the base, never in a variant.
DATA_FIELDS = ("data", "text_encoder", "max_text_len", "synthetic_train", "synthetic_valid", "synthetic_test")
_VARIANT_KEY_FOR = {"modalities": "modalities", "disabled_losses": "disable", "label_info": "replace"}
_TOP_KEYS = ("name", "description", "method", "data", "preset", "base", "seeds", "reference",
             "variants", "robustness")
_VARIANT_KEYS = ("name", "description", "modalities", "disable", "replace", "overrides")
_ROBUSTNESS_KEYS = ("kinds", "modalities", "rates", "seed")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_TERM_NEEDS = {"supcr_ta": "the acoustic stream (a)", "sim_ta": "the acoustic stream (a)",
               "supcr_tv": "the visual stream (v)", "sim_tv": "the visual stream (v)",
               "supcr_fusion": "at least one non-text stream (a or v) to fuse with text"}


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
    replace: tuple[tuple[str, str], ...] = ()  # (old, new) pairs from REPLACEMENTS
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

    @staticmethod
    def metric_prefix(corruption: Corruption) -> str:
        """`robust/<kind>-<modalities>/r<rate:.2f>/test/` (docs/ARCHITECTURE.md, MLflow contract)."""
        return f"robust/{corruption.key}/test/"


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
        start = self.resolved_base if self.resolved_base is not None else _preset(self.preset)
        values = {"method": self.method, "data": self.data, **self.base_overrides}
        return RunConfig.from_dict(values, base=start, source=f"{self.source}: base")

    def config(self, variant: str | Variant, *, seed: int | None = None) -> RunConfig:
        """The variant's full configuration (seed: the first of the spec's seeds by default)."""
        v = variant if isinstance(variant, Variant) else self.variant(variant)
        cfg = _variant_config(self.base_config(), v, source=_where(self.source, v.name))
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

    # -- derived specs -----------------------------------------------------------------------------
    def with_changes(self, *, name: str | None = None, data: str | None = None,
                     seeds: Sequence[int] | None = None, variants: Sequence[str] | None = None,
                     base_set: Mapping[str, Any] | None = None,
                     base_sweep: str | None = None, resolved_base: RunConfig | None = None,
                     source: str = "command line") -> "AblationSpec":
        """A copy with command-line changes, validated again (an error names `source`).

        `base_set` adds base overrides (they apply to every variant; a variant's own delta wins).
        `variants` keeps only the named variants (the reference is always kept).
        """
        raw = self.to_dict()
        if variants is not None:
            unknown = [v for v in variants if v not in self.variant_names()]
            if unknown:
                raise AblationSpecError(f"{self.source} (with {source} changes)",
                                        [f"unknown variant(s) {unknown}; variants: {list(self.variant_names())}"])
            keep = {self.reference, *variants}
            raw["variants"] = [v for v in raw["variants"] if v["name"] in keep]
        if name is not None:
            raw["name"] = name
        if data is not None:
            raw["data"] = data
        if seeds is not None:
            raw["seeds"] = list(seeds)
        base = raw.pop("base", None) or {}
        sweep = base.get("sweep")
        overrides = dict(base.get("overrides") or {}) if sweep is not None else dict(base)
        overrides.update(base_set or {})
        sweep = base_sweep if base_sweep is not None else sweep
        raw["base"] = {"sweep": sweep, "overrides": overrides} if sweep is not None else overrides
        spec = parse_spec(raw, source=f"{self.source} (with {source} changes)",
                          resolved_base=resolved_base if resolved_base is not None else self.resolved_base)
        return replace(spec, source=self.source)

    def with_base(self, resolved: RunConfig) -> "AblationSpec":
        """The spec with its `{sweep: ...}` base replaced by that sweep's best configuration."""
        spec = parse_spec(self.to_dict(), source=f"{self.source} (on the best configuration of sweep "
                                                 f"{self.base_sweep!r})", resolved_base=resolved)
        return replace(spec, source=self.source)

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


# ---------------------------------------------------------------------------------------------
# loading


def shipped_specs() -> list[Path]:
    """The spec files shipped in `ablations/specs/`."""
    return sorted(SPECS_DIR.glob("*.yaml"))


def resolve_spec_path(name: str | Path) -> Path:
    """A path as given, or the name of a shipped spec (`hscl_modalities` or `hscl_modalities.yaml`)."""
    p = Path(name)
    if p.exists():
        return p
    for cand in (SPECS_DIR / p.name, SPECS_DIR / f"{p.name}.yaml"):
        if cand.exists():
            return cand
    shipped = ", ".join(s.stem for s in shipped_specs())
    raise FileNotFoundError(f"no ablation spec {str(name)!r} (neither a file nor a shipped spec: {shipped})")


def load_spec(path: str | Path, *, resolved_base: RunConfig | None = None) -> AblationSpec:
    """Read and validate a spec file (raises `AblationSpecError` listing every problem)."""
    p = resolve_spec_path(path)
    source = str(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise AblationSpecError(source, [f"cannot read the file: {exc}"]) from None
    try:
        raw = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise AblationSpecError(source, [f"not valid YAML: {exc}"]) from None
    return parse_spec(raw, source=source, default_name=p.stem.replace("_", "-"),
                      resolved_base=resolved_base)


def parse_spec(raw: Any, *, source: str = "<spec>", default_name: str | None = None,
               resolved_base: RunConfig | None = None) -> AblationSpec:
    """Validate a spec given as data; see the module docstring for the format."""
    problems: list[str] = []
    add = problems.append
    if not isinstance(raw, Mapping):
        raise AblationSpecError(source, [f"the spec must be a mapping with keys {list(_TOP_KEYS)}, "
                                         f"got {type(raw).__name__}"])
    _unknown_keys(raw, _TOP_KEYS, "top level", add)

    name = raw.get("name", default_name)
    if name is None:
        add("top level: 'name' is missing (the study name; default: the file's stem)")
        name = "ablation"
    elif not isinstance(name, str) or not _NAME_RE.match(name):
        add(f"top level: name {name!r} must be a string of letters, digits and _ . + - "
            "(it names the MLflow parent run and the Ray Tune experiment)")
        name = str(name)
    description = _as_text(raw.get("description", ""), "top level: description", add)

    method = raw.get("method", "hscl")
    if method not in METHODS:
        add(f"top level: unknown method {method!r}; valid methods: {sorted(METHODS)}")
        method = "hscl"
    data = raw.get("data", "synthetic-mosi")
    if not isinstance(data, str) or not data:
        add(f"top level: data must be a synthetic name or a path, got {data!r}")
        data = "synthetic-mosi"
    preset = raw.get("preset", "mosi")
    if preset not in PRESETS:
        add(f"top level: unknown preset {preset!r}; valid presets: {list(PRESETS)}")
        preset = "mosi"

    before = len(problems)
    base_overrides, base_sweep = _parse_base(raw.get("base", {}), add)
    base_ok = len(problems) == before
    seeds = _parse_seeds(raw.get("seeds", list(DEFAULT_SEEDS)), add)

    raw_variants = raw.get("variants")
    variants: list[Variant] = []
    if not isinstance(raw_variants, list) or not raw_variants:
        add("top level: 'variants' must be a non-empty list; each item: "
            f"{{name: ..., and any of {list(_VARIANT_KEYS[2:])}}}")
        raw_variants = []
    seen: dict[str, int] = {}
    malformed: set[str] = set()  # variants with a shape problem: no semantic check (it would repeat it)
    for i, item in enumerate(raw_variants):
        before = len(problems)
        v = _parse_variant(item, i, add)
        if v is None:
            continue
        if len(problems) > before:
            malformed.add(v.name)
        if v.name in seen:
            add(f"variant {v.name!r}: duplicate variant name (items {seen[v.name] + 1} and {i + 1}); "
                "variant names must be unique")
            continue
        seen[v.name] = i
        variants.append(v)

    reference = raw.get("reference", DEFAULT_REFERENCE)
    if variants and reference not in seen:
        how = ("set `reference: NAME` to one of them" if "reference" not in raw
               else "the reference must be one of them")
        add(f"top level: reference variant {reference!r} is not among the variants "
            f"{[v.name for v in variants]}; {how}")

    robustness = None
    before = len(problems)
    if raw.get("robustness") is not None:
        robustness = _parse_robustness(raw["robustness"], add)
    robustness_ok = len(problems) == before and reference in seen and reference not in malformed

    spec = AblationSpec(source=source, name=name, method=method, data=data, variants=tuple(variants),
                        seeds=seeds or DEFAULT_SEEDS, reference=reference, preset=preset,
                        base_overrides=base_overrides, base_sweep=base_sweep, robustness=robustness,
                        description=description, resolved_base=resolved_base)
    # Semantic checks build configurations: only for a well-formed base and the well-formed variants.
    checked = spec
    if not base_ok:  # check the variants against the base's well-formed part (its problems are listed)
        valid = set(RunConfig.field_names()) - set(_TOP_LEVEL_FIELDS)
        checked = replace(spec, base_overrides={k: v for k, v in base_overrides.items() if k in valid})
    problems += _semantic_problems(checked, skip=malformed, robustness=robustness_ok)
    if problems:
        raise AblationSpecError(source, problems)
    return spec


# ---------------------------------------------------------------------------------------------
# parts


def _parse_base(base: Any, add) -> tuple[dict[str, Any], str | None]:
    if base is None:
        return {}, None
    if not isinstance(base, Mapping):
        add("base: must be a mapping of configuration overrides, or {sweep: NAME_OR_PARENT_RUN_ID}, "
            f"got {base!r}")
        return {}, None
    if "sweep" in base:
        sweep = base["sweep"]
        _unknown_keys(base, ("sweep", "overrides"), "base (sweep form)", add)
        if not isinstance(sweep, str) or not sweep:
            add(f"base: sweep must be a sweep name or its parent run id, got {sweep!r}")
            sweep = None
        overrides = base.get("overrides") or {}
        if not isinstance(overrides, Mapping):
            add(f"base: overrides must be a mapping of configuration fields, got {overrides!r}")
            overrides = {}
        _check_fields(dict(overrides), "base: overrides", add, forbidden=_TOP_LEVEL_FIELDS)
        return dict(overrides), sweep
    overrides = dict(base)
    _check_fields(overrides, "base", add, forbidden=_TOP_LEVEL_FIELDS)
    return overrides, None


def _parse_seeds(seeds: Any, add) -> tuple[int, ...]:
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if not isinstance(seeds, list) or not seeds:
        add(f"seeds: must be a non-empty list of integers (default {list(DEFAULT_SEEDS)}), got {seeds!r}")
        return ()
    bad = [s for s in seeds if not isinstance(s, int) or isinstance(s, bool) or s < 0]
    if bad:
        add(f"seeds: {bad} are not non-negative integers")
        return ()
    dups = sorted({s for s in seeds if seeds.count(s) > 1})
    if dups:
        add(f"seeds: duplicate seed(s) {dups}; each seed trains once per variant")
    return tuple(dict.fromkeys(seeds))


def _parse_variant(item: Any, index: int, add) -> Variant | None:
    if isinstance(item, str):  # `- full` is a variant with no deltas
        item = {"name": item}
    if not isinstance(item, Mapping):
        add(f"variant #{index + 1}: must be a mapping {{name: ..., ...}}, got {item!r}")
        return None
    name = item.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        add(f"variant #{index + 1}: name {name!r} must be a string of letters, digits and _ . + - "
            "(it becomes the `ablation` tag of the MLflow runs)")
        return None
    where = f"variant {name!r}"
    _unknown_keys(item, _VARIANT_KEYS, where, add)

    modalities = None
    if item.get("modalities") is not None:
        modalities = _parse_modalities(item["modalities"], f"{where}: modalities", add,
                                       letters=MODALITY_LETTERS, subsets=MODALITY_SUBSETS,
                                       note="text is always used")

    disable_raw = item.get("disable") or []
    if isinstance(disable_raw, str):
        disable_raw = [disable_raw]
    disable: list[str] = []
    if not isinstance(disable_raw, list):
        add(f"{where}: disable must be a list of loss terms; valid terms: {list(HSCL_LOSS_TERMS)}")
    else:
        for term in disable_raw:
            t = str(term).strip().lower()
            if t not in HSCL_LOSS_TERMS:
                add(f"{where}: unknown loss term {term!r} in disable; valid terms: {list(HSCL_LOSS_TERMS)}")
            elif t == "task":
                add(f"{where}: the 'task' term cannot be disabled (nothing would train the regressor); "
                    f"terms that can: {list(HSCL_LOSS_TERMS[1:])}")
            elif t not in disable:
                disable.append(t)

    replace_raw = item.get("replace") or {}
    pairs: list[tuple[str, str]] = []
    valid_repl = ", ".join(f"{a}: {b}" for a, b in REPLACEMENTS)
    if not isinstance(replace_raw, Mapping):
        add(f"{where}: replace must be a mapping {{old: new}}; valid replacements: {{{valid_repl}}}")
    else:
        for old, new in replace_raw.items():
            pair = (str(old).strip().lower(), str(new).strip().lower())
            if pair not in REPLACEMENTS:
                add(f"{where}: unknown replacement {old!r} -> {new!r}; valid replacements: {{{valid_repl}}}")
            else:
                pairs.append(pair)

    overrides = item.get("overrides") or {}
    if not isinstance(overrides, Mapping):
        add(f"{where}: overrides must be a mapping of configuration fields, got {overrides!r}")
        overrides = {}
    overrides = dict(overrides)
    _check_fields(overrides, f"{where}: overrides", add, forbidden=_TOP_LEVEL_FIELDS)
    shared = [k for k in DATA_FIELDS if k in overrides and k not in _TOP_LEVEL_FIELDS]
    if shared:
        add(f"{where}: overrides {shared}: these decide the dataset, which all variants of a study "
            "share; set them in `base:` (or with --set)")
    for fld, key in _VARIANT_KEY_FOR.items():
        if fld in overrides and item.get(key):
            add(f"{where}: sets {fld} both in overrides and through `{key}:`; use `{key}:` only")

    description = _as_text(item.get("description", ""), f"{where}: description", add)
    return Variant(name=name, modalities=modalities, disable=tuple(disable), replace=tuple(pairs),
                   overrides=overrides, description=description)


def _parse_robustness(block: Any, add) -> Robustness | None:
    where = "robustness"
    if not isinstance(block, Mapping):
        add(f"{where}: must be a mapping with keys {list(_ROBUSTNESS_KEYS)}, got {block!r}")
        return None
    _unknown_keys(block, _ROBUSTNESS_KEYS, where, add)
    kinds = block.get("kinds", list(CORRUPTION_KINDS))
    kinds = [kinds] if isinstance(kinds, str) else kinds
    ok_kinds: list[str] = []
    if not isinstance(kinds, list) or not kinds:
        add(f"{where}: kinds must be a non-empty list; valid kinds: {list(CORRUPTION_KINDS)}")
    else:
        for k in kinds:
            if k not in CORRUPTION_KINDS:
                add(f"{where}: unknown corruption kind {k!r}; valid kinds: {list(CORRUPTION_KINDS)} "
                    "(frames: a rate r of each stream's frames go missing; stream: the whole stream "
                    "goes missing in a rate r of the samples)")
            elif k not in ok_kinds:
                ok_kinds.append(k)
    mods = block.get("modalities")
    mods = [mods] if isinstance(mods, str) else mods
    ok_mods: list[str] = []
    subsets = CORRUPTIBLE_SUBSETS
    if not isinstance(mods, list) or not mods:
        add(f"{where}: modalities must be a non-empty list of streams to corrupt; valid: {list(subsets)}")
    else:
        for m in mods:
            c = _parse_modalities(m, f"{where}: modalities", add, letters=CORRUPTIBLE, subsets=subsets,
                                  note="t: text tokens masked / text reduced to [CLS] [SEP]")
            if c is not None and c not in ok_mods:
                ok_mods.append(c)
    rates = block.get("rates")
    rates = [rates] if isinstance(rates, (int, float)) and not isinstance(rates, bool) else rates
    ok_rates: list[float] = []
    if not isinstance(rates, list) or not rates:
        add(f"{where}: rates must be a non-empty list of missing rates in [0, 1], e.g. [0.0, 0.25, 0.5]")
    else:
        bad = [r for r in rates if isinstance(r, bool) or not isinstance(r, (int, float))
               or not 0.0 <= float(r) <= 1.0]
        if bad:
            add(f"{where}: rates {bad} are not missing rates in [0, 1]")
        else:
            for r in rates:
                if round(float(r), 2) != float(r):
                    add(f"{where}: rate {r} has more than 2 decimals (metric names print r with 2: "
                        f"r{float(r):.2f})")
            ok_rates = sorted(set(float(r) for r in rates))
            if len(ok_rates) != len(rates):
                add(f"{where}: duplicate rates in {rates}")
    seed = block.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        add(f"{where}: seed must be a non-negative integer, got {seed!r}")
        seed = 0
    if not (ok_kinds and ok_mods and ok_rates):
        return None
    return Robustness(kinds=tuple(ok_kinds), modalities=tuple(ok_mods), rates=tuple(ok_rates), seed=seed)


def _parse_modalities(value: Any, where: str, add, *, letters: Sequence[str], subsets: Sequence[str],
                      note: str) -> str | None:
    """'tav', 't+a+v', 'T,A', ['t', 'a'] -> canonical subset in t, a, v order."""
    if isinstance(value, str):
        parts = [p for p in re.split(r"[\s+,]+", value.strip().lower()) if p]
        chars = list(parts[0]) if len(parts) == 1 else parts
    elif isinstance(value, list):
        chars = [str(x).strip().lower() for x in value]
    else:
        add(f"{where}: {value!r} must be a string like 'ta' or a list like [t, a]; "
            f"valid modalities: {list(letters)}; valid subsets: {list(subsets)} ({note})")
        return None
    unknown = [c for c in chars if c not in letters]
    if unknown:
        add(f"{where}: unknown modality {', '.join(repr(c) for c in unknown)} in {value!r}; "
            f"valid modalities: {list(letters)}; valid subsets: {list(subsets)} ({note})")
        return None
    canon = "".join(c for c in ("t", "a", "v") if c in chars)
    if canon not in subsets:
        add(f"{where}: {value!r} is not a valid subset; valid subsets: {list(subsets)} ({note})")
        return None
    return canon


def _check_fields(values: Mapping[str, Any], where: str, add, *, forbidden: Iterable[str]) -> None:
    valid = RunConfig.field_names()
    unknown = sorted(str(k) for k in values if k not in valid)
    if unknown:
        add(f"{where}: unknown configuration field(s) {unknown}; valid fields: {sorted(valid)}")
    for k in forbidden:
        if k in values:
            home = "the spec's `seeds:` list (or --seeds)" if k == "seed" else f"the top-level `{k}:` key"
            add(f"{where}: {k!r} cannot be set here; it comes from {home}")


def _unknown_keys(mapping: Mapping, valid: Sequence[str], where: str, add) -> None:
    unknown = [str(k) for k in mapping if k not in valid]
    if unknown:
        add(f"{where}: unknown key(s) {unknown}; valid keys: {list(valid)}")


def _as_text(value: Any, where: str, add) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        add(f"{where}: must be text, got {value!r}")
        return ""
    return value


def _where(source: str, variant: str) -> str:
    return f"{source}: variant {variant!r}"


def _preset(name: str) -> RunConfig:
    return RunConfig.paper_mosei() if name == "mosei" else RunConfig.paper_mosi()


def _variant_config(base: RunConfig, v: Variant, *, source: str) -> RunConfig:
    """base -> modalities -> disable -> replace -> overrides (seed left as the base's)."""
    values: dict[str, Any] = {}
    if v.modalities is not None:
        values["modalities"] = v.modalities
    if v.disable:
        values["disabled_losses"] = tuple(dict.fromkeys((*base.disabled_losses, *v.disable)))
    for pair in v.replace:
        values.update(REPLACEMENTS[pair])
    values.update(v.overrides)
    return RunConfig.from_dict(values, base=base, source=source)


def _semantic_problems(spec: AblationSpec, *, skip: set[str] = frozenset(),
                       robustness: bool = True) -> list[str]:
    """Build every variant's configuration and check the combinations it makes."""
    problems: list[str] = []
    try:
        base = spec.base_config()
    except ValueError as exc:
        return [str(exc).replace(f"{spec.source}: ", "", 1)]
    # With `base: {sweep: ...}` and no resolved base, the preset stands in for the sweep's best
    # configuration; the runner checks again once it has resolved it (before launching anything).
    for v in spec.variants:
        if v.name in skip:
            continue
        where = f"variant {v.name!r}"
        # the variant without its switches: which terms exist for its modalities and method?
        try:
            shape = _variant_config(base, replace(v, disable=(), replace=()), source="")
        except ValueError as exc:
            problems.append(f"{where}: {_strip_source(exc)}")
            continue
        defined = possible_terms(shape)
        for term in v.disable:
            if term in defined:
                continue
            if spec.method != "hscl" or term not in _TERM_NEEDS:
                problems.append(f"{where}: method {shape.method!r} has no loss term {term!r}; "
                                f"its terms for modalities {shape.modalities!r}: {list(defined)}")
            else:
                problems.append(f"{where}: cannot disable {term!r}: it needs {_TERM_NEEDS[term]}, but the "
                                f"variant's modalities are {shape.modalities!r}; terms defined there: "
                                f"{list(defined)}")
        try:
            cfg = _variant_config(base, v, source="")
        except ValueError as exc:
            problems.append(f"{where}: {_strip_source(exc)}")
            continue
        if v.replace:
            live = [t for t in active_terms(cfg) if t in CONTRASTIVE_TERMS]
            if not live:
                olds = ", ".join(f"{a} -> {b}" for a, b in v.replace)
                problems.append(f"{where}: replace {olds} changes nothing: no contrastive term is active "
                                f"(method {cfg.method!r}, modalities {cfg.modalities!r}, disabled "
                                f"{list(cfg.disabled_losses)}; contrastive terms: {list(CONTRASTIVE_TERMS)})")
            elif all(shape.label_info == b for _, b in v.replace):
                problems.append(f"{where}: replace changes nothing: the base already uses "
                                f"label_info={shape.label_info!r}")
    if robustness and spec.robustness is not None and spec.reference in spec.variant_names():
        try:
            ref_mods = spec.config(spec.reference).modalities
        except ValueError:
            ref_mods = None
        if ref_mods is not None:
            for m in spec.robustness.modalities:
                missing = [c for c in m if c not in ref_mods]
                if missing:
                    problems.append(f"robustness: cannot corrupt {m!r} on the reference variant "
                                    f"{spec.reference!r}: its modalities are {ref_mods!r} (no {', '.join(missing)})")
    return problems


def _strip_source(exc: Exception) -> str:
    text = str(exc)
    return text[2:] if text.startswith(": ") else text


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False):
    loader.flatten_mapping(node)
    out = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=deep)
    return out


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
