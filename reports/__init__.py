"""Reports: MLflow runs -> reviewer tables and plots (Markdown, LaTeX booktabs, self-contained HTML).

Reads only the MLflow contract of docs/ARCHITECTURE.md (of the project only the record's names,
`mmsa_core.record_names`; never sweeps, ablations, torch or ray). Modules, one concept each:

- `runs`           MLflow runs -> tidy frame (params cast, dataset input), FINISHED kept, others counted
- `stats`          mean ± sample std, paired t-test / Wilcoxon over matched seeds, Holm (pure)
- `tables`         table models (numbers in table units, one significance mark, degenerate rows) and builders
- `budget`         what a section's runs were given; smoke / cut / random-encoder banners; like-with-like key
- `sweep_summary`  best trials, optuna importances on full-fidelity trials, history, compute saved
- `plots`          matplotlib (Agg) figures
- `document`       the report as data; `render_markdown`, `render_latex`, `render_html` format it
- `export_csv`     every table as `<table id>.csv` (numbers as numbers)
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
