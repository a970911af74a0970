"""Render a `Report` as GitHub-flavoured Markdown (`report.md`); significant cells carry `SIG_MARK` (†)."""

from __future__ import annotations

from reports.document import SYNTHETIC_BANNER, Figure, Paragraph, Report, metadata_rows
from reports.tables import SIG_MARK, StatTable, TextTable, fmt_delta, fmt_mean_std, full_caption


def render(report: Report) -> str:
    out = [f"# {report.title}", ""]
    for banner in report.banners:  # the first screen: what these numbers are not
        out += [f"> **{banner}**", ""]
    if report.synthetic:
        out += [f"> **{SYNTHETIC_BANNER}**", ""]
    out += _table(["", ""], [[f"**{k}**", v] for k, v in metadata_rows(report)], [False, False])
    if report.conventions:
        out += [""] + [f"- {c}" for c in report.conventions]
    n = 0
    for section in report.sections:
        out += ["", f"## {section.title}", ""]
        for banner in section.banners:
            out += [f"> **{banner}**", ""]
        for block in section.blocks:
            if isinstance(block, (StatTable, TextTable)):
                n += 1
                out += [f"**Table {n}. {block.title}.** {full_caption(block)}", ""]
                out += stat_table(block) if isinstance(block, StatTable) else text_table(block)
                if block.notes:
                    out += [""] + [f"- {note}" for note in block.notes]
                out.append("")
            elif isinstance(block, Figure):
                out += [f"![{_esc(block.caption)}]({block.path.name})", "", f"*{block.caption}*", ""]
            elif isinstance(block, Paragraph):
                out += [block.text, ""]
    return "\n".join(out).rstrip() + "\n"


def stat_table(t: StatTable) -> list[str]:
    headers = [t.row_header, *t.extra_headers] + (["n"] if t.show_n else [])
    headers += [f"{c.header} {c.arrow}".strip() for c in t.columns]
    numeric = [False] * (1 + len(t.extra_headers)) + [True] * ((1 if t.show_n else 0) + len(t.columns))
    rows = []
    for r in t.rows:
        cells = [r.display_label] + [r.extra.get(h, "") for h in t.extra_headers]
        if t.show_n:
            cells.append(str(r.n))
        for c in t.columns:
            cell = r.cells[c.key]
            mean, std = fmt_mean_std(cell, c.decimals)
            text = f"{mean} ± {std}" if cell.n else "n/a"
            if t.show_delta and not r.reference:
                text += f" (Δ {fmt_delta(cell, c.decimals)}{SIG_MARK if cell.significant else ''})"
            if cell.n and cell.n != r.n:
                text += f" [n={cell.n}]"
            cells.append(text)
        rows.append(cells)
    return _table(headers, rows, numeric)


def text_table(t: TextTable) -> list[str]:
    return _table(list(t.headers), [list(r) for r in t.rows], list(t.numeric) or [False] * len(t.headers))


def _table(headers: list[str], rows: list[list[str]], numeric: list[bool]) -> list[str]:
    lines = ["| " + " | ".join(_esc(h) for h in headers) + " |",
             "|" + "|".join("---:" if num else "---" for num in numeric) + "|"]
    lines += ["| " + " | ".join(_esc(c) for c in r) + " |" for r in rows]
    return lines


def _esc(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
