"""`python -m reports` / `mmsa-report`: MLflow runs -> Markdown, LaTeX and HTML report.

    python -m reports --experiment mmsa-synthetic-mosi --sweep hscl-s1 --ablation hscl-abl \
        --methods --out outputs/report --csv outputs/report/csv

Only argparse is imported at module level, so `--help` stays fast; the work is in
`reports.build.build_report`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

TESTS = ("ttest", "wilcoxon")  # kept equal to reports.stats.TESTS (checked by a test)
EVALUATORS = ("ped-anova", "fanova")  # kept equal to reports.sweep_summary.EVALUATORS (checked)
FORMATS = ("md", "tex", "html")


# The store sweeps/hscl.py and ablations/run.py write by default (their --storage-path runs/sweeps).
DEFAULT_STORE = Path("runs") / "sweeps" / "mlflow.db"


def default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / DEFAULT_STORE}"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m reports",
        description="Turn MLflow sweep / ablation runs into reviewer tables (mean ± std over seeds, paired "
                    "tests with Holm correction on at least 3 matched seeds) and plots, as Markdown, LaTeX "
                    "(booktabs) and one self-contained HTML page; each section states its budget, smoke and "
                    "truncated runs get a banner; logged under report/ of every parent run it covers.")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///<cwd>/runs/sweeps/mlflow.db, where the sweeps and ablations write by default)")
    p.add_argument("--experiment", help="experiment name or id (default: that of a run id given, else the only "
                                        "mmsa-* experiment)")
    p.add_argument("--sweep", action="append", default=[], metavar="NAME_OR_RUN_ID",
                   help="sweep parent run (sweep_name tag, run name or run id); repeatable")
    p.add_argument("--ablation", action="append", default=[], metavar="NAME_OR_RUN_ID",
                   help="ablation parent run (study name, run name or run id); repeatable")
    p.add_argument("--robustness", action="append", default=[], metavar="NAME_OR_RUN_ID",
                   help="robustness study parent run (ablations/robustness.py: kind=robustness); repeatable")
    p.add_argument("--methods", action="store_true",
                   help="add a method comparison of the experiment's sweeps, comparisons and evaluate-protocol "
                        "robustness studies: rows only from runs of one budget (data digest, splits, encoder, "
                        "max_epochs, seeds), one table per budget")
    p.add_argument("--out", default="outputs/report", help="output folder (default: %(default)s)")
    p.add_argument("--csv", metavar="DIR", default=None,
                   help="also write every table as DIR/<table id>.csv (numbers as numbers, in table units; "
                        "mean, std, n and the tests in separate columns)")
    p.add_argument("--format", default=",".join(FORMATS),
                   help="comma-separated subset of md,tex,html (default: %(default)s)")
    p.add_argument("--test", choices=TESTS, default="ttest",
                   help="paired test for ablations (default: %(default)s; Holm correction across variants)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default: %(default)s)")
    p.add_argument("--importance", choices=EVALUATORS, default="ped-anova",
                   help="optuna importance evaluator for sweep summaries (default: %(default)s)")
    p.add_argument("--no-log-artifacts", action="store_true",
                   help="do not log the report under report/ of the parent runs")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        parser().error(f"--format: unknown {bad or formats}; choose from {','.join(FORMATS)}")
    if not (args.sweep or args.ablation or args.methods or args.robustness):
        parser().error("nothing to report: give --sweep, --ablation, --robustness and/or --methods")
    from reports.build import build_report
    from reports.runs import ReportError

    uri = args.tracking_uri or default_tracking_uri()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep stderr for errors
    try:
        result = build_report(tracking_uri=uri, out_dir=args.out, experiment=args.experiment,
                              sweeps=args.sweep, ablations=args.ablation, methods=args.methods,
                              robustness=args.robustness,
                              formats=formats, test=args.test, alpha=args.alpha, evaluator=args.importance,
                              log_artifacts=not args.no_log_artifacts, csv_dir=args.csv)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for key in formats:
        print(f"wrote {result.files[key]}")
    if result.csv:
        print(f"wrote {len(result.csv)} CSV table(s) to {args.csv}")
    left = result.report.excluded_total
    if left:
        print("left out (not FINISHED): " + ", ".join(f"{n} {s}" for s, n in left.items()))
    for run_id in result.logged_to:
        print(f"logged report/ artifacts to run {run_id}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
