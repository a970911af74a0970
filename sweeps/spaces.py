"""Search spaces for Optuna: each method's space comes from its package (`mmsa_core.methods`).

`SPACES[method]` is the method's `SearchSpace` (its own keys, plus the optimiser's behind
``--search-lr-dropout``); the mapping is derived from the method registry, so a new method package
brings its space with it. `define_by_run(trial, params=...)` only calls ``trial.suggest_*`` for
each parameter — no computation, as Ray's `OptunaSearch` requires — and samples a conditional
parameter only while its condition holds (on values already sampled, or fixed in `fixed`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Callable, Iterator

from mmsa_core.methods import get_method, method_names
from mmsa_core.methods.space import OPTIM_PARAMS, Param, SearchSpace, spans_decades

__all__ = ["SPACES", "Param", "SearchSpace", "OPTIM_PARAMS", "define_by_run", "define_by_run_for",
           "spans_decades"]


class _RegistrySpaces(Mapping):
    """method name -> SearchSpace, read from the method registry on access."""

    def __getitem__(self, name: str) -> SearchSpace:
        if name not in method_names():
            raise KeyError(name)
        return get_method(name).search_space()

    def __iter__(self) -> Iterator[str]:
        return iter(method_names())

    def __len__(self) -> int:
        return len(method_names())


SPACES: Mapping[str, SearchSpace] = _RegistrySpaces()


def define_by_run(trial: Any, params: tuple[Param, ...], fixed: Mapping[str, Any] | None = None) -> None:
    """Ask Optuna for each parameter; returns nothing (the sampled values are the config)."""
    values: dict[str, Any] = dict(fixed or {})
    for p in params:
        if not p.active(values):
            continue
        if p.kind == "categorical":
            values[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        elif p.kind == "int":
            values[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), step=p.step, log=p.log)
        else:
            values[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)


def define_by_run_for(space: SearchSpace, base_values: Mapping[str, Any],
                      with_optim: bool = False) -> Callable[[Any], None]:
    """The picklable define-by-run function OptunaSearch calls for every new trial."""
    params = space.params(with_optim)
    watched = {k for p in params for k, _ in p.when}
    fixed = {k: v for k, v in base_values.items() if k in watched}
    return functools.partial(define_by_run, params=params, fixed=fixed)
