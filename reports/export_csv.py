"""Every table of a report as CSV (`python -m reports --csv DIR`): one file per table, ``<table id>.csv``.

Why: reviewers re-plot and re-test; a number copied out of Markdown or HTML has lost its digits.
Numbers are written as numbers at full precision, in table units (Acc and F1 × 100; MAE and Corr as
logged), one quantity per column: a mean ± std cell becomes ``<metric>_mean``, ``<metric>_std``,
``<metric>_n`` and, against a reference, ``<metric>_delta``, ``<metric>_n_pairs``, ``<metric>_p``,
``<metric>_p_holm``, ``<metric>_significant``. Missing values are empty cells, flags true / false.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import Any, Sequence

from reports.document import Report, slug
from reports.tables import StatTable, TextTable

_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")
_MISSING = {"n/a", "–", "?", ""}


def stat_rows(t: StatTable) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of a `StatTable`, one quantity per column."""
    headers = [t.row_header, *t.extra_headers, "reference", "degenerate", "n"]
    quantities = ["mean", "std", "n"] + (["delta", "n_pairs", "p", "p_holm", "significant"] if t.show_delta else [])
    headers += [f"{c.key}_{q}" for c in t.columns for q in quantities]
    rows = []
    for r in t.rows:
        row: list[Any] = [r.label, *(r.extra.get(h, "") for h in t.extra_headers), r.reference, r.degenerate, r.n]
        for c in t.columns:
            cell = r.cells[c.key]
            row += [cell.mean, cell.std, cell.n]
            if t.show_delta:
                tested = not r.reference
                row += [cell.delta, cell.n_pairs if tested else None, cell.p, cell.p_adj,
                        cell.significant if tested else None]
        rows.append(row)
    return headers, rows


def text_rows(t: TextTable) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of a `TextTable`: its raw values when the builder kept them, else the
    printed cells, each read as a number where it is one."""
    if t.values:
        return list(t.value_headers), [list(v) for v in t.values]
    return list(t.headers), [[_parse(c) for c in row] for row in t.rows]


def write_tables(report: Report, directory: Path) -> dict[str, Path]:
    """Write every table of `report` into `directory`; returns table id -> file."""
    directory.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for t in report.tables():
        name = slug(t.id)
        if name in {p.stem for p in out.values()}:
            raise ValueError(f"two tables of the report have the id {t.id!r}; CSV files are named by table id")
        headers, rows = stat_rows(t) if isinstance(t, StatTable) else text_rows(t)
        path = directory / f"{name}.csv"
        write_csv(path, headers, rows)
        out[t.id] = path
    return out


def write_csv(path: Path, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(headers)
        for row in rows:
            w.writerow([_cell(v) for v in row])


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "" if not math.isfinite(v) else repr(v)
    return v


def _parse(text: str) -> Any:
    s = str(text).strip()
    if s in _MISSING:
        return None
    if _NUMBER.match(s):
        return int(s) if re.fullmatch(r"[-+]?\d+", s) else float(s)
    return s
