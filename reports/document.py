"""The report as data: sections of tables, figures and paragraphs, plus what the report is about.

`reports.build` fills it from MLflow; `render_markdown`, `render_latex` and `render_html` turn the
same object into three formats, so the three always carry the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Union

from reports.tables import StatTable, TextTable


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Figure:
    id: str
    path: Path  # PNG written next to the report
    caption: str


Block = Union[StatTable, TextTable, Figure, Paragraph]


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)
    banners: list[str] = field(default_factory=list)  # budget warnings, repeated at the section's top


@dataclass(frozen=True)
class ParentRef:
    kind: str  # "sweep" | "ablation" | "robustness" | "comparison"
    name: str
    run_id: str


@dataclass
class Report:
    title: str
    dataset: str
    experiment_id: str
    experiment_name: str
    tracking_uri: str  # credentials removed
    generated_at: str  # ISO 8601, UTC
    parents: list[ParentRef] = field(default_factory=list)
    excluded: dict[str, dict[str, int]] = field(default_factory=dict)  # scope -> status -> count
    excluded_ids: dict[str, str] = field(default_factory=dict)  # run id -> status (scopes may overlap)
    sections: list[Section] = field(default_factory=list)
    conventions: list[str] = field(default_factory=list)

    @property
    def synthetic(self) -> bool:
        return "synthetic" in self.dataset.lower()

    @property
    def banners(self) -> list[str]:
        """Every section's budget banner, once each, for the report's first screen."""
        return list(dict.fromkeys(b for s in self.sections for b in s.banners))

    @property
    def excluded_total(self) -> Mapping[str, int]:
        """Runs left out, by status, each run counted once (a run can be in two sections)."""
        total: dict[str, int] = {}
        for status in self.excluded_ids.values():
            total[status] = total.get(status, 0) + 1
        return dict(sorted(total.items()))

    def tables(self) -> list[StatTable | TextTable]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, (StatTable, TextTable))]

    def figures(self) -> list[Figure]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Figure)]


SYNTHETIC_BANNER = ("SYNTHETIC DATA — these numbers come from generated data and are not comparable "
                    "with published results.")


def metadata_rows(report: Report) -> list[tuple[str, str]]:
    """The facts every format prints at the top, as (label, value)."""
    rows = [("Dataset", report.dataset + (" (synthetic)" if report.synthetic else "")),
            ("MLflow experiment", f"{report.experiment_name} (id {report.experiment_id})"),
            ("Tracking URI", report.tracking_uri)]
    for p in report.parents:
        rows.append((f"{p.kind.capitalize()} parent run", f"{p.name} (run id {p.run_id})"))
    total = report.excluded_total
    left = ", ".join(f"{n} {s}" for s, n in total.items()) if total else "none"
    rows.append(("Runs left out (not FINISHED)", left))
    for scope, counts in report.excluded.items():
        if counts:
            rows.append((f"  … in {scope}", ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))))
    rows.append(("Generated", report.generated_at))
    return rows


def slug(text: str) -> str:
    """An id safe for HTML ids, LaTeX labels and file names."""
    import re

    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s or "x"
