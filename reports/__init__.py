"""Reports: MLflow runs -> reviewer tables and plots (Markdown, LaTeX booktabs, self-contained HTML).

Reads only the MLflow contract of docs/ARCHITECTURE.md (never mmsa_core, sweeps, ablations,
torch or ray). Modules, one concept each:

- `runs`           mlflow.search_runs -> tidy frame (params cast), FINISHED kept, others counted
- `stats`          mean ± sample std, paired t-test / Wilcoxon over matched seeds, Holm (pure)
- `tables`         table models (numbers in table units + significance flags) and builders
- `sweep_summary`  best trials, optuna importances on full-fidelity trials, history, compute saved
- `plots`          matplotlib (Agg) figures
- `document`       the report as data; `render_markdown`, `render_latex`, `render_html` format it
- `build`          compose, write and log a report;  `cli`  `python -m reports`

Public names are imported lazily so `python -m reports --help` loads argparse only.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["build_report", "BuildResult", "ReportError", "load_runs", "tidy", "RunSet", "summarize",
           "paired_test", "holm", "ablation_table", "results_table", "robustness_table", "summarize_sweep"]

_WHERE = {"build_report": "build", "BuildResult": "build", "ReportError": "runs", "load_runs": "runs",
          "tidy": "runs", "RunSet": "runs", "summarize": "stats", "paired_test": "stats", "holm": "stats",
          "ablation_table": "tables", "results_table": "tables", "robustness_table": "tables",
          "summarize_sweep": "sweep_summary"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"reports.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'reports' has no attribute {name!r}")
