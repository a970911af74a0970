"""A toy method defined outside the product: the recipe of docs/ARCHITECTURE.md, "Add a method".

It is registered by naming this module in MMSA_METHOD_MODULES (tests/sweeps/test_method_recipe.py)
and runs through the single-run CLI, a --smoke sweep and an ablation spec without any file of the
product knowing it exists. Terms: ``task`` (L1) and ``spread`` (the batch variance of the fused
vector, pulled towards a target width — a stand-in for a method's own regulariser). It has no
presets of its own: ``--preset mosei`` gives it MOSEI's data and encoder shapes from the core.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mmsa_core.methods.base import Method, MethodParams
from mmsa_core.methods.space import Param


@dataclass(frozen=True)
class Params(MethodParams):
    spread_weight: float = 0.1
    target: float = 1.0
    pool: Literal["cls", "mean"] = "cls"

    def problems(self) -> list[str]:
        return [] if self.spread_weight >= 0 else [f"spread_weight={self.spread_weight} must be >= 0"]


METHOD = Method(
    name="toy_method",
    description="a toy method for the add-a-method recipe test",
    params=Params,
    terms=("task", "spread"),
    runtime="tests.toy_method.runtime",
    possible_terms=lambda cfg: ("task", "spread"),
    term_weights=lambda cfg: {"task": 1.0, "spread": cfg.params.spread_weight},
    space=(Param("toy_method.spread_weight", 1e-3, 1.0, True, "a loss weight"),
           Param("toy_method.pool", kind="categorical", choices=("cls", "mean"))),
    term_needs={"spread": "nothing beyond text"},
)
