"""Reading ablation specs: YAML (duplicate keys refused) -> a validated `AblationSpec`.

The format is in `ablations.spec`'s docstring. `load_spec(path)` parses and validates a file; every
problem is collected into one `AblationSpecError` whose lines each name the file and the variant,
and list the valid names (loss terms and replacements come from the method's package).
`ablations.checks` then builds every variant's full `RunConfig`, so an impossible combination (a
fusion loss with no stream to fuse, InfoNCE with no contrastive term left) fails here, not mid-run.
This module imports neither torch, Ray nor MLflow.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from ablations.checks import check_fields, semantic_problems
from ablations.schema import (CORRUPTIBLE, CORRUPTIBLE_SUBSETS, DEFAULT_REFERENCE, DEFAULT_SEEDS,
                              MODALITY_LETTERS, PRESETS, SPECS_DIR, TOP_LEVEL_FIELDS, AblationSpec,
                              AblationSpecError, Robustness, Variant)
from mmsa_core.config import DATA_FIELDS, RunConfig, method_keys
from mmsa_core.data.corruption import CORRUPTION_KINDS, MASKING_KIND
from mmsa_core.methods import get_method, method_names
from mmsa_core.methods.base import Method

_TOP_KEYS = ("name", "description", "method", "data", "preset", "base", "seeds", "reference",
             "variants", "robustness")
_VARIANT_KEYS = ("name", "description", "modalities", "disable", "replace", "overrides")
_ROBUSTNESS_KEYS = ("kinds", "modalities", "rates", "seed")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")

# ---------------------------------------------------------------------------------------------
# derived specs (command-line changes, a resolved sweep base): validated again


def spec_with_changes(spec: AblationSpec, *, name: str | None = None, data: str | None = None,
                      seeds: Sequence[int] | None = None, variants: Sequence[str] | None = None,
                      base_set: Mapping[str, Any] | None = None,
                      base_sweep: str | None = None, resolved_base: RunConfig | None = None,
                      source: str = "command line") -> AblationSpec:
    """A copy with command-line changes, validated again (an error names `source`).

    `base_set` adds base overrides (they apply to every variant; a variant's own delta wins).
    `variants` keeps only the named variants (the reference is always kept).
    """
    raw = spec.to_dict()
    if variants is not None:
        unknown = [v for v in variants if v not in spec.variant_names()]
        if unknown:
            raise AblationSpecError(f"{spec.source} (with {source} changes)",
                                    [f"unknown variant(s) {unknown}; variants: {list(spec.variant_names())}"])
        keep = {spec.reference, *variants}
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
    changed = parse_spec(raw, source=f"{spec.source} (with {source} changes)",
                         resolved_base=resolved_base if resolved_base is not None else spec.resolved_base)
    return replace(changed, source=spec.source)


def spec_on_base(spec: AblationSpec, resolved: RunConfig) -> AblationSpec:
    """The spec with its `{sweep: ...}` base replaced by that sweep's best configuration."""
    resolved_spec = parse_spec(spec.to_dict(), source=f"{spec.source} (on the best configuration of sweep "
                                                      f"{spec.base_sweep!r})", resolved_base=resolved)
    return replace(resolved_spec, source=spec.source)


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
    if method not in method_names():
        add(f"top level: unknown method {method!r}; valid methods: {list(method_names())}")
        method = "hscl"
    method_spec = get_method(method)
    data = raw.get("data", "synthetic-mosi")
    if not isinstance(data, str) or not data:
        add(f"top level: data must be a synthetic name or a path, got {data!r}")
        data = "synthetic-mosi"
    preset = raw.get("preset", "mosi")
    if preset not in PRESETS:
        add(f"top level: unknown preset {preset!r}; valid presets: {list(PRESETS)}")
        preset = "mosi"

    before = len(problems)
    base_overrides, base_sweep = _parse_base(raw.get("base", {}), method, add)
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
        v = _parse_variant(item, i, method_spec, add)
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
        valid = set(method_keys(method)) - set(TOP_LEVEL_FIELDS)
        checked = replace(spec, base_overrides={k: v for k, v in base_overrides.items() if k in valid})
    problems += semantic_problems(checked, skip=malformed, robustness=robustness_ok)
    if problems:
        raise AblationSpecError(source, problems)
    return spec


# ---------------------------------------------------------------------------------------------
# parts


def _parse_base(base: Any, method: str, add) -> tuple[dict[str, Any], str | None]:
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
        check_fields(dict(overrides), method, "base: overrides", add, forbidden=TOP_LEVEL_FIELDS)
        return dict(overrides), sweep
    overrides = dict(base)
    check_fields(overrides, method, "base", add, forbidden=TOP_LEVEL_FIELDS)
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


def _parse_variant(item: Any, index: int, method: Method, add) -> Variant | None:
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
                                       letters=MODALITY_LETTERS, subsets=method.modality_subsets,
                                       note="text is always used")

    terms = list(method.terms)
    disable_raw = item.get("disable") or []
    if isinstance(disable_raw, str):
        disable_raw = [disable_raw]
    disable: list[str] = []
    if not isinstance(disable_raw, list):
        add(f"{where}: disable must be a list of loss terms; valid terms of {method.name!r}: {terms}")
    else:
        for term in disable_raw:
            t = str(term).strip().lower()
            if t not in terms:
                add(f"{where}: unknown loss term {term!r} in disable; valid terms of {method.name!r}: {terms}")
            elif t == "task":
                add(f"{where}: the 'task' term cannot be disabled (nothing would train the regressor); "
                    f"terms that can: {[x for x in terms if x != 'task']}")
            elif t not in disable:
                disable.append(t)

    replace_raw = item.get("replace") or {}
    pairs: list[tuple[str, str]] = []
    valid_repl = ", ".join(f"{r.old}: {r.new}" for r in method.replacements) or "none"
    if not isinstance(replace_raw, Mapping):
        add(f"{where}: replace must be a mapping {{old: new}}; valid replacements of {method.name!r}: "
            f"{{{valid_repl}}}")
    else:
        for old, new in replace_raw.items():
            pair = (str(old).strip().lower(), str(new).strip().lower())
            if method.replacement(*pair) is None:
                add(f"{where}: unknown replacement {old!r} -> {new!r}; valid replacements of "
                    f"{method.name!r}: {{{valid_repl}}}")
            else:
                pairs.append(pair)

    overrides = item.get("overrides") or {}
    if not isinstance(overrides, Mapping):
        add(f"{where}: overrides must be a mapping of configuration fields, got {overrides!r}")
        overrides = {}
    overrides = dict(overrides)
    check_fields(overrides, method.name, f"{where}: overrides", add, forbidden=TOP_LEVEL_FIELDS)
    shared = [k for k in DATA_FIELDS if k in overrides and k not in TOP_LEVEL_FIELDS]
    if shared:
        add(f"{where}: overrides {shared}: these decide the dataset, which all variants of a study "
            "share; set them in `base:` (or with --set)")
    own_key = {"modalities": "modalities", "disabled_losses": "disable"}
    own_key.update({f"{method.name}.{k}": "replace" for r in method.replacements for k in r.changes})
    for fld, key in own_key.items():
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
            if k not in CORRUPTION_KINDS and k != MASKING_KIND:
                add(f"{where}: unknown corruption kind {k!r}; valid kinds: {list(CORRUPTION_KINDS)} "
                    "(frames: a rate r of each stream's frames go missing; stream: the whole stream "
                    f"goes missing in a rate r of the samples) and {MASKING_KIND!r} (the field's MMSA "
                    "masking: each token / frame dropped with probability r, mask seeds 111, 1111, 11111)")
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
