"""What a method is, as data: its typed hyper-parameters, loss terms, presets, search space and the
facts ablation specs need. Pure Python (no torch), so configuration, `--help` and spec validation
never pay for the model; the torch side lives in each package's ``runtime`` module, imported only
when a run is built.

A method package ``mmsa_core/methods/<name>/`` defines, in its ``__init__.py``::

    @dataclass(frozen=True)
    class Params(MethodParams):       # its own hyper-parameters, with its paper's defaults
        tau: float = 0.5
    METHOD = Method(name=..., params=Params, terms=..., ...)

and a ``runtime.py`` with ``build(cfg, data, device) -> MethodRuntime``. The registry
(`mmsa_core.methods`) finds the package; nothing outside it changes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

from mmsa_core.methods.space import OPTIM_PARAMS, Param, SearchSpace

MODALITY_SUBSETS: tuple[str, ...] = ("t", "ta", "tv", "tav")


class RunConfig(Protocol):
    """What a method reads of a run's configuration; `mmsa_core.config.RunConfig` is the one there is.

    A protocol, not an import: the configuration depends on the method registry (its fields come
    from the methods' ``Params``), so the methods must not depend on the configuration module.
    """

    method: str
    modalities: str
    disabled_losses: tuple[str, ...]
    method_params: Any

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class MethodParams:
    """Base of every method's hyper-parameter dataclass (frozen; fields typed by annotation)."""

    def problems(self) -> list[str]:
        """Invalid values, as sentences naming the field (Literal choices are checked for you)."""
        return []


@dataclass(frozen=True)
class Replacement:
    """An ablation's ``replace: {old: new}``: the method-parameter changes it makes."""

    old: str
    new: str
    changes: Mapping[str, Any]  # bare field names of the method's Params
    affects: tuple[str, ...] = ()  # terms it changes; the spec checks one of them is active
    why: str = ""


@dataclass(frozen=True)
class Method:
    """One method of the registry. Functions take the full `RunConfig` (shared + own fields)."""

    name: str
    description: str
    params: type[MethodParams]
    terms: tuple[str, ...]  # every loss term it can compute; "task" first
    runtime: str  # module path whose ``build(cfg, data, device)`` returns its MethodRuntime
    possible_terms: Callable[["RunConfig"], tuple[str, ...]]  # terms defined for cfg's modalities
    term_weights: Callable[["RunConfig"], Mapping[str, float]]  # weight of every possible term
    space: tuple[Param, ...] = ()  # its own searched keys (``<name>.<field>``)
    # dataset -> what the method's paper changes there (shared keys, and own fields by bare name), on
    # top of the dataset's shared settings (`mmsa_core.config.DATASET_SETTINGS`: data, encoder shapes)
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    term_needs: Mapping[str, str] = field(default_factory=dict)  # term -> what it needs, in words
    replacements: tuple[Replacement, ...] = ()
    modality_subsets: tuple[str, ...] = MODALITY_SUBSETS
    citation: str = ""
    published: str = "none published"
    check: Callable[["RunConfig"], list[str]] | None = None  # cross-field problems (shared + own)
    switches: Mapping[str, str] = field(default_factory=dict)  # own bool field -> help: a CLI flag (--faithful)

    # --- configuration ---------------------------------------------------------------------------
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self.params))

    def keys(self) -> tuple[str, ...]:
        """Namespaced configuration keys of its parameters (``hscl.omega1``, ...)."""
        return tuple(f"{self.name}.{f}" for f in self.field_names())

    def defaults(self) -> MethodParams:
        return self.params()

    def preset(self, dataset: str) -> Mapping[str, Any]:
        """Changes its paper makes for `dataset` beyond the dataset's shared settings."""
        return self.presets.get(dataset, {})

    # --- losses -------------------------------------------------------------------------------------
    def loss_weights(self, cfg: "RunConfig") -> dict[str, float]:
        """Weight of every possible term; 0 for a term switched off by name."""
        weights = dict(self.term_weights(cfg))
        return {t: (0.0 if t in cfg.disabled_losses else float(weights[t])) for t in self.possible_terms(cfg)}

    def active_terms(self, cfg: "RunConfig") -> tuple[str, ...]:
        """Terms that are computed: defined for the modalities, not disabled, weight > 0."""
        return tuple(t for t, w in self.loss_weights(cfg).items() if w > 0 or t == "task")

    def replacement(self, old: str, new: str) -> Replacement | None:
        for r in self.replacements:
            if (r.old, r.new) == (old, new):
                return r
        return None

    # --- search ---------------------------------------------------------------------------------------
    def search_space(self) -> SearchSpace:
        """Its own keys, the optimiser's behind a flag; a method with none searches the optimiser's."""
        if not self.space:
            return SearchSpace(method=self.name, core=OPTIM_PARAMS)
        return SearchSpace(method=self.name, core=tuple(self.space), optim=OPTIM_PARAMS)
