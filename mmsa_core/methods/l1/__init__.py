"""L1 baseline: HSCL's encoders and head trained on the L1 task loss alone (no contrastive term).

The reference every contrastive method must beat: same encoders, same optimisation (HSCL's paper
presets for the shared fields), one term. Its search space is the optimiser's.
"""

from __future__ import annotations

from dataclasses import dataclass

from mmsa_core.methods.base import Method, MethodParams
from mmsa_core.methods.hscl import OPTIMISATION


@dataclass(frozen=True)
class Params(MethodParams):
    """The L1 baseline has no hyper-parameter of its own."""


METHOD = Method(
    name="l1",
    description="the shared encoders trained on the L1 task loss alone (no contrastive term)",
    params=Params,
    terms=("task",),
    runtime="mmsa_core.methods.l1.runtime",
    possible_terms=lambda cfg: ("task",),
    term_weights=lambda cfg: {"task": 1.0},
    presets=OPTIMISATION,  # the baseline shares HSCL's optimisation
)
