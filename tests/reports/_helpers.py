"""Small parsers the report tests share: Markdown tables by title, numbers in cells."""

from __future__ import annotations

import re

import numpy as np

NUM = r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?"
MEAN_STD = re.compile(rf"^(?P<mean>{NUM}) ± (?P<std>{NUM}|n/a)(?: \(Δ (?P<delta>{NUM}|n/a)(?P<sig>†?)\))?$")


def md_tables(text: str) -> dict[str, list[dict[str, str]]]:
    """Every Markdown table that follows a '**Table N. Title.**' line, keyed by Title."""
    lines = text.splitlines()
    out: dict[str, list[dict[str, str]]] = {}
    for i, line in enumerate(lines):
        m = re.match(r"^\*\*Table \d+\. (?P<title>.+?)\.\*\*", line)
        if not m:
            continue
        j = i + 1
        while not lines[j].startswith("|"):
            j += 1
        header = _cells(lines[j])
        rows = []
        k = j + 2
        while k < len(lines) and lines[k].startswith("|"):
            rows.append(dict(zip(header, _cells(lines[k]))))
            k += 1
        out[m["title"]] = rows
    return out


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def parse_mean_std(cell: str) -> dict:
    m = MEAN_STD.match(cell)
    assert m, f"cell {cell!r} is not 'mean ± std (Δ d†)'"
    return {"mean": float(m["mean"]), "std": float(m["std"]) if m["std"] != "n/a" else None,
            "delta": None if m["delta"] in (None, "n/a") else float(m["delta"]), "sig": m["sig"] == "†"}


def close_to_print(printed: float, value: float, decimals: int) -> bool:
    """The printed number is `value` rounded to `decimals` (half a unit, plus float slack)."""
    return abs(printed - value) <= 0.5 * 10 ** -decimals + 1e-9


def holm_reference(p: list[float]) -> list[float]:
    """Holm by the textbook step-down formula, written independently of reports.stats.holm."""
    p = np.asarray(p, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.maximum.accumulate(stepped)
    out = np.empty(m)
    out[order] = adjusted
    return out.tolist()
