"""Printing a finished sweep for a person at a terminal.

Why a module of its own: the human summary is the command line's concern, not the sweep's; it
reads a `SweepResult` and imports neither Ray nor Optuna.
"""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

from sweeps.spaces import SPACES

if TYPE_CHECKING:
    from sweeps.search import SweepResult


def print_result(result: "SweepResult", stream: Any = None) -> None:
    """A short human summary of a finished sweep."""
    out = stream or sys.stdout
    print(f"\nsweep {result.name}: {result.search_trials} search trials, best trial "
          f"{result.best_trial_id} (objective {result.best_objective:.4f})", file=out)
    searched = {p.name for p in SPACES[result.best_config.get("method", "hscl")].params(True)}
    print("best configuration (searched fields): " + json.dumps(
        {k: result.best_config[k] for k in sorted(result.best_config) if k in searched}), file=out)
    summ = result.summary()
    if summ:
        n = max(v["n"] for v in summ.values())
        print(f"final stage, test metrics at the best validation epoch, mean ± std over {n} seed(s):",
              file=out)
        for key in ("mae", "corr", "acc2_non0", "f1_non0", "acc7"):
            if key in summ:
                print(f"  {key:<10} {summ[key]['mean']:.4f} ± {summ[key]['std']:.4f}", file=out)
    print(f"MLflow: {result.tracking_uri} (parent run {result.parent_run_id}); "
          f"Optuna journal: {os.path.join(result.sweep_dir, 'optuna_journal.log')}", file=out)

