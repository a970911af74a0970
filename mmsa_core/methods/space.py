"""Search spaces as data: what a sweep may vary, with ranges, scales and conditions.

A method's package declares its space with `Param`s (pure data, no Optuna): the same tuple serves
the Optuna define-by-run function (`sweeps.spaces`), the ``search_space.json`` artifact of a sweep's
MLflow parent run, and the configuration hash that refuses to resume a sweep whose space changed.

Kinds: ``float`` (uniform or log-uniform), ``int`` (inclusive bounds, optional step or log), and
``categorical`` (any JSON scalars). ``when`` makes a parameter conditional: it is sampled only while
every named parameter (searched, or fixed in the base configuration) has one of the listed values;
otherwise the base configuration's value stands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

PARAM_KINDS = ("float", "int", "categorical")


@dataclass(frozen=True)
class Param:
    """One searched configuration key (``lr_text`` or ``<method>.<field>``)."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    why: str = ""
    kind: str = "float"
    choices: tuple[Any, ...] = ()
    step: int = 1  # int kind only
    # {key: allowed values}, stored as sorted pairs: hashable, and an immutable class-level default
    # (a Param pickled before this field existed still reads it)
    when: Any = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(self.choices))
        pairs = self.when.items() if isinstance(self.when, Mapping) else self.when
        object.__setattr__(self, "when", tuple(sorted((str(k), tuple(v)) for k, v in pairs)))
        if self.kind not in PARAM_KINDS:
            raise ValueError(f"{self.name}: kind={self.kind!r} must be one of {list(PARAM_KINDS)}")
        if self.kind == "categorical":
            if len(self.choices) < 2:
                raise ValueError(f"{self.name}: a categorical parameter needs at least two choices")
            return
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"{self.name}: low={self.low} must be < high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"{self.name}: a log scale needs low > 0")
        if self.kind == "int" and not (float(self.low).is_integer() and float(self.high).is_integer()):
            raise ValueError(f"{self.name}: an int parameter needs integer bounds")

    @property
    def distribution(self) -> str:
        if self.kind == "categorical":
            return "categorical"
        prefix = "int-" if self.kind == "int" else ""
        return prefix + ("log-uniform" if self.log else "uniform")

    def clip(self, value: Any) -> Any:
        """`value` moved into the parameter's range (categoricals: unchanged if valid)."""
        if self.kind == "categorical":
            if value not in self.choices:
                raise ValueError(f"{self.name}: {value!r} is not one of {list(self.choices)}")
            return value
        clipped = min(max(float(value), float(self.low)), float(self.high))
        return int(round(clipped)) if self.kind == "int" else clipped

    def active(self, values: Mapping[str, Any]) -> bool:
        """Whether the conditions in `when` hold for `values` (searched + base values)."""
        return all(values.get(k) in allowed for k, allowed in self.when)

    def describe(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("name", "low", "high", "log", "why")}
        # the historic keys first (name, low, high, log, why), then what other kinds add
        out["distribution"] = self.distribution
        if self.kind != "float":
            out["kind"] = self.kind
        if self.kind == "categorical":
            out["choices"] = list(self.choices)
            out.pop("low"), out.pop("high"), out.pop("log")
        if self.kind == "int" and self.step != 1:
            out["step"] = self.step
        if self.when:
            out["when"] = {k: list(v) for k, v in self.when}
        return out


@dataclass(frozen=True)
class SearchSpace:
    """A method's space: `core` always (its loss weights and switches), `optim` behind a flag."""

    method: str
    core: tuple[Param, ...]
    optim: tuple[Param, ...] = ()

    def params(self, with_optim: bool = False) -> tuple[Param, ...]:
        return self.core + (self.optim if with_optim else ())

    def names(self, with_optim: bool = False) -> tuple[str, ...]:
        return tuple(p.name for p in self.params(with_optim))

    def describe(self, with_optim: bool = False) -> list[dict[str, Any]]:
        """JSON-able description (artifact ``search_space.json`` and the configuration hash)."""
        return [p.describe() for p in self.params(with_optim)]

    def start_point(self, base: Mapping[str, Any], with_optim: bool = False) -> dict[str, Any]:
        """The base configuration's values (its flat ``to_dict()``) for the searched keys, clipped
        into range; a conditional parameter whose condition fails is left out, as Optuna would."""
        values = dict(base)
        point: dict[str, Any] = {}
        for p in self.params(with_optim):
            if p.active({**values, **point}):
                point[p.name] = p.clip(values[p.name])
        return point


def spans_decades(p: Param) -> bool:
    """True when the range covers at least one decade (the reason a log scale is used)."""
    return p.kind != "categorical" and p.low > 0 and math.log10(p.high / p.low) >= 1.0


LOSS_WEIGHT = "loss weight; the paper's value is small and the range spans decades"
# The optimiser's knobs, shared by every method (searched with --search-lr-dropout).
OPTIM_PARAMS: tuple[Param, ...] = (
    Param("lr_text", 1e-6, 1e-4, True, "pretrained text encoder learning rate"),
    Param("lr_other", 1e-5, 3e-3, True, "learning rate of the randomly initialised layers"),
    Param("dropout", 0.0, 0.3, False, "a bounded fraction: linear scale"),
)
