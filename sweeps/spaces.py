"""Search spaces, as data, and the one define-by-run function Optuna runs over them.

A space is a tuple of `Param` (a `RunConfig` field, its range, log or linear scale, and why).
`define_by_run(trial, params=...)` only calls ``trial.suggest_float`` for each one — no
computation, as Ray's `OptunaSearch` requires — so the same data serves three purposes: the Optuna
space, the ``search_space.json`` artifact of the sweep's MLflow parent run, and the configuration
hash that refuses to resume a sweep whose space changed.

HSCL (spec hscl.md §4, §6; ranges follow methods.md's convention for loss weights):

| field   | range            | scale | paper MOSI / MOSEI | why                                   |
|---------|------------------|-------|--------------------|---------------------------------------|
| omega1  | [1e-3, 1]        | log   | 0.01 / 0.01        | unimodal-level weight; spans decades  |
| omega2  | [1e-3, 1]        | log   | 0.1 / 0.05         | fusion-level weight; spans decades    |
| alpha   | [1e-3, 1]        | log   | 0.1 / 0.1          | similarity weight inside a pair       |
| tau     | [0.05, 1]        | log   | 0.5 / 0.5          | SupCR temperature; ratios matter      |
| with ``search_lr_dropout``:                                                            |
| lr_text | [1e-6, 1e-4]     | log   | 5e-5 / 1e-5        | pretrained encoder: small steps       |
| lr_other| [1e-5, 3e-3]     | log   | 1e-3 / 1e-4        | randomly initialised layers           |
| dropout | [0, 0.3]         | lin.  | 0.1                | a bounded fraction                    |

Every default of both presets lies inside its range, so the first trial can evaluate the paper's
own configuration (`start_point`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:
    from mmsa_core.config import RunConfig


@dataclass(frozen=True)
class Param:
    """One searched `RunConfig` field: a float in [low, high], log-uniform or uniform."""

    name: str
    low: float
    high: float
    log: bool
    why: str = ""

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"{self.name}: low={self.low} must be < high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"{self.name}: a log scale needs low > 0")

    def clip(self, value: float) -> float:
        return min(max(float(value), self.low), self.high)


@dataclass(frozen=True)
class SearchSpace:
    """A method's space: `core` always, `optim` (learning rates, dropout) behind a flag."""

    method: str
    core: tuple[Param, ...]
    optim: tuple[Param, ...] = ()

    def params(self, with_optim: bool = False) -> tuple[Param, ...]:
        return self.core + (self.optim if with_optim else ())

    def describe(self, with_optim: bool = False) -> list[dict[str, Any]]:
        """JSON-able description (artifact ``search_space.json`` and the configuration hash)."""
        return [dict(asdict(p), distribution="log-uniform" if p.log else "uniform")
                for p in self.params(with_optim)]

    def start_point(self, base: "RunConfig", with_optim: bool = False) -> dict[str, float]:
        """The base configuration's values for the searched fields (clipped into range)."""
        return {p.name: p.clip(getattr(base, p.name)) for p in self.params(with_optim)}

    def define_by_run(self, with_optim: bool = False) -> Callable[[Any], None]:
        """The picklable define-by-run function OptunaSearch calls for every new trial."""
        return functools.partial(define_by_run, params=self.params(with_optim))


def define_by_run(trial: Any, params: tuple[Param, ...]) -> None:
    """Ask Optuna for each parameter; returns nothing (the sampled values are the config)."""
    for p in params:
        trial.suggest_float(p.name, p.low, p.high, log=p.log)


def spans_decades(p: Param) -> bool:
    """True when the range covers at least one decade (the reason a log scale is used)."""
    return p.low > 0 and math.log10(p.high / p.low) >= 1.0


_LOSS_WEIGHT = "loss weight; the paper's value is small and the range spans decades"
_OPTIM = (
    Param("lr_text", 1e-6, 1e-4, True, "pretrained text encoder learning rate"),
    Param("lr_other", 1e-5, 3e-3, True, "learning rate of the randomly initialised layers"),
    Param("dropout", 0.0, 0.3, False, "a bounded fraction: linear scale"),
)

SPACES: Mapping[str, SearchSpace] = {
    "hscl": SearchSpace(
        method="hscl",
        core=(
            Param("omega1", 1e-3, 1.0, True, "unimodal-level " + _LOSS_WEIGHT),
            Param("omega2", 1e-3, 1.0, True, "fusion-level " + _LOSS_WEIGHT),
            Param("alpha", 1e-3, 1.0, True, "similarity term inside each pair; " + _LOSS_WEIGHT),
            Param("tau", 0.05, 1.0, True, "SupCR temperature: acts through ratios, so log scale"),
        ),
        optim=_OPTIM,
    ),
    # The L1 baseline has no loss weight: its space is the optimiser's.
    "l1": SearchSpace(method="l1", core=_OPTIM),
}
