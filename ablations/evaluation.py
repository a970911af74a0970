"""The one test-time evaluation of a study: a trained model's test split under a list of corruptions.

Both the ablation spec's ``robustness:`` block (the older ``frames`` / ``stream`` draws and the
field's ``tokens`` masking) and the robustness study's evaluate protocol (MMSA masking at every
rate, whole streams ``absent``) are a list of (metric prefix, `mmsa_core.data.Corruption`) pairs
evaluated on the best-validation weights of a run — this class.

It runs inside the trial, right after training, where the best weights are (the grid's
``evaluation`` hook: same node, same GPU share), on the runs whose keys the driver named
(`run_keys`: the driver knows which runs are the reference variant's, so nothing is re-derived from
configurations). It only reads the checkpoint and the test split: training and model selection
never see a corrupted array. A failure is logged and swallowed in the trial — the training result
stands — and the driver evaluates what is missing from the checkpoint afterwards
(`ablations.study`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmsa_core.data.corruption import Corruption

if TYPE_CHECKING:
    from mmsa_core.config import RunConfig
    from mmsa_core.data import MSADataset

log = logging.getLogger("ablations")


@dataclass(frozen=True)
class TestTimeEvaluation:
    """Evaluate the best-validation weights on the test split under each corruption (picklable)."""

    corruptions: tuple[Corruption, ...]
    run_keys: frozenset[str]  # the runs it applies to

    __test__ = False  # not a pytest class

    def applies_to(self, run_key: str) -> bool:
        return run_key in self.run_keys

    def metric_names(self, metric: str = "mae") -> list[str]:
        """One metric of every setting (what a complete evaluation has logged)."""
        return [c.metric_prefix + metric for c in self.corruptions]

    def evaluate(self, cfg: "RunConfig", data: "MSADataset", checkpoint_dir: str) -> dict[str, float]:
        """``{<prefix><metric>: value}`` for every corruption; raises on failure."""
        from mmsa_core.data.corruption import apply_corruption
        from mmsa_core.trainer import evaluate, load_best_runtime, resolve_device, seed_everything

        device = resolve_device(cfg.device)
        _, runtime = load_best_runtime(checkpoint_dir, data, device=str(device), cfg=cfg)
        test = data.splits["test"]
        out: dict[str, float] = {}
        for corruption in self.corruptions:
            arrays = apply_corruption(test, corruption)
            seed_everything(cfg.seed, cfg.deterministic)  # faithful mode's random [CLS] stays reproducible
            out.update({corruption.metric_prefix + k: float(v) for k, v in evaluate(runtime, arrays, cfg, device).items()})
        return out

    def __call__(self, cfg: "RunConfig", data: "MSADataset", checkpoint_dir: str) -> dict[str, float]:
        try:
            return self.evaluate(cfg, data, checkpoint_dir)
        except Exception as exc:  # noqa: BLE001 - see the module docstring
            log.warning("test-time evaluation failed in the trial (%s seed %s): %r; the driver retries it",
                        cfg.method, cfg.seed, exc)
            return {}
