"""Checks that build configurations: every variant's full `RunConfig` and the combinations it
makes (a term disabled that its modalities do not define, a replacement with nothing to replace,
robustness on a stream the reference lacks). What a term needs comes from the method's package.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from mmsa_core.config import method_keys
from mmsa_core.methods import get_method

if TYPE_CHECKING:
    from ablations.schema import AblationSpec


def check_fields(values: Mapping[str, Any], method: str, where: str, add, *, forbidden: Iterable[str]) -> None:
    """Every key must be a configuration key of `method` (shared or its own), and not a forbidden one."""
    valid = method_keys(method)
    unknown = sorted(str(k) for k in values if k not in valid)
    if unknown:
        add(f"{where}: unknown configuration field(s) {unknown} for method {method!r}; valid fields: "
            f"{sorted(valid)}")
    for k in forbidden:
        if k in values:
            home = "the spec's `seeds:` list (or --seeds)" if k == "seed" else f"the top-level `{k}:` key"
            add(f"{where}: {k!r} cannot be set here; it comes from {home}")


def semantic_problems(spec: "AblationSpec", *, skip: set[str] = frozenset(),
                       robustness: bool = True) -> list[str]:
    """Build every variant's configuration and check the combinations it makes."""
    from ablations.schema import variant_config

    problems: list[str] = []
    method = get_method(spec.method)
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
            shape = variant_config(base, replace(v, disable=(), replace=()), source="")
        except ValueError as exc:
            problems.append(f"{where}: {_strip_source(exc)}")
            continue
        defined = method.possible_terms(shape)
        for term in v.disable:
            if term in defined:
                continue
            if term not in method.term_needs:
                problems.append(f"{where}: method {shape.method!r} has no loss term {term!r}; "
                                f"its terms for modalities {shape.modalities!r}: {list(defined)}")
            else:
                problems.append(f"{where}: cannot disable {term!r}: it needs {method.term_needs[term]}, but the "
                                f"variant's modalities are {shape.modalities!r}; terms defined there: "
                                f"{list(defined)}")
        try:
            cfg = variant_config(base, v, source="")
        except ValueError as exc:
            problems.append(f"{where}: {_strip_source(exc)}")
            continue
        for old, new in v.replace:
            r = method.replacement(old, new)
            live = [t for t in method.active_terms(cfg) if t in r.affects]
            if r.affects and not live:
                problems.append(f"{where}: replace {old} -> {new} changes nothing: no term it affects is "
                                f"active (method {cfg.method!r}, modalities {cfg.modalities!r}, disabled "
                                f"{list(cfg.disabled_losses)}; terms it affects: {list(r.affects)})")
            elif all(getattr(shape.method_params, k) == val for k, val in r.changes.items()):
                now = ", ".join(f"{cfg.method}.{k}={val!r}" for k, val in r.changes.items())
                problems.append(f"{where}: replace changes nothing: the base already uses {now}")
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

