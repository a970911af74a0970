"""``python -m sweeps list``: every sweep and study in an MLflow store, one line each.

    python -m sweeps list                                      # the store under ./runs/sweeps
    python -m sweeps list --storage-path runs/quickstart/sweeps --tracking-uri sqlite:///$PWD/runs/quickstart/mlflow.db

Reads the parent runs (``kind`` = sweep | ablation | comparison | robustness) of every ``mmsa-*``
experiment: name, kind, method(s), dataset, status, child runs (FINISHED / all), and the headline
result the parent carries (a sweep's best validation objective and final test MAE; a study's
first headline metric). Exit code 2 with one line when the store does not answer.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Sequence

from mmsa_core.record_names import Tag
from sweeps.runtime_options import DEFAULT_STORAGE, resolve_tracking_uri

KINDS = ("sweep", "ablation", "comparison", "robustness")


@dataclass(frozen=True)
class StudyRow:
    """One sweep or study, as its parent run records it."""

    name: str
    kind: str
    methods: str
    dataset: str
    status: str
    runs_finished: int
    runs: int
    headline: str  # e.g. "valid mae 0.812, test mae 0.874"
    started: int  # ms since the epoch
    run_id: str


def list_studies(tracking_uri: str) -> list[StudyRow]:
    """Every sweep and study in the store, newest first."""
    from sweeps.tracking import Tracker

    tracker = Tracker(tracking_uri)
    client = tracker.client
    rows = []
    for exp in client.search_experiments():
        if not exp.name.startswith("mmsa-"):
            continue
        runs = client.search_runs([exp.experiment_id], max_results=5000)
        children: dict[str, list] = {}
        for run in runs:
            parent = run.data.tags.get("mlflow.parentRunId")
            if parent:
                children.setdefault(parent, []).append(run)
        for run in runs:
            tags = run.data.tags
            if "mlflow.parentRunId" in tags or tags.get(Tag.KIND) not in KINDS:
                continue
            kids = children.get(run.info.run_id, [])
            rows.append(StudyRow(
                name=tags.get(Tag.NAME, run.info.run_name or "?"), kind=tags[Tag.KIND],
                methods=tags.get(Tag.METHODS) or tags.get(Tag.METHOD, "?"),
                dataset=tags.get(Tag.DATASET, exp.name.removeprefix("mmsa-")), status=run.info.status,
                runs_finished=sum(k.info.status == "FINISHED" for k in kids), runs=len(kids),
                headline=headline(tags[Tag.KIND], run.data.metrics, tags), started=run.info.start_time or 0,
                run_id=run.info.run_id))
    return sorted(rows, key=lambda r: r.started, reverse=True)


def headline(kind: str, metrics: dict[str, float], tags: dict[str, str]) -> str:
    """The result a parent run carries, in a few words."""
    parts = []
    if kind == "sweep":
        objective = tags.get("objective", "objective").split(" ")[0].removeprefix("best/")
        if "rerank/winner_mean" in metrics:
            parts.append(f"{objective} {metrics['rerank/winner_mean']:.4f} (re-ranked)")
        elif "search/best_objective" in metrics:
            parts.append(f"{objective} {metrics['search/best_objective']:.4f}")
        elif tags.get("best_objective"):
            parts.append(f"{objective} {tags['best_objective']}")
        if "final/test/mae" in metrics:
            parts.append(f"final test mae {metrics['final/test/mae']:.4f}")
    else:
        for key in sorted(metrics):
            if key.endswith("/test/mae"):
                parts.append(f"{key.replace('/test/', ' test ')} {metrics[key]:.4f}")
    return ", ".join(parts[:3]) or "-"


def format_rows(rows: Sequence[StudyRow]) -> str:
    if not rows:
        return "no sweep or study in this store"
    header = ("name", "kind", "method", "dataset", "status", "runs", "result")
    table = [header] + [(r.name, r.kind, r.methods, r.dataset, r.status, f"{r.runs_finished}/{r.runs}", r.headline)
                        for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header) - 1)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row[:-1], widths)) + "  " + str(row[-1])
                     for row in table)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sweeps list", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--storage-path", default=DEFAULT_STORAGE,
                   help="the sweeps' storage path; its MLflow store is the default (default: %(default)s)")
    p.add_argument("--tracking-uri", default="",
                   help="MLflow store (default: $MLFLOW_TRACKING_URI, else sqlite:///<storage-path>/mlflow.db)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    uri = resolve_tracking_uri(args.tracking_uri, args.storage_path)
    if not uri:  # a storage URI has no SQLite store under it
        print(f"error: --storage-path {args.storage_path} is a URI: pass --tracking-uri", file=sys.stderr)
        return 2
    from sweeps.preflight import PreflightError, check_tracking, redact_uri

    if uri.startswith("sqlite:///"):
        import os

        if not os.path.exists(uri[len("sqlite:///"):]):
            print(f"error: no MLflow store at {uri} (give --storage-path or --tracking-uri)", file=sys.stderr)
            return 2
    try:
        check_tracking(uri)
    except PreflightError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"MLflow store {redact_uri(uri)}:")
    print(format_rows(list_studies(uri)))
    return 0
