"""Render a `Report` as a LaTeX document (`report.tex`): booktabs tables ready to paste into a paper.

Every table is a `table` float with `\\toprule/\\midrule/\\bottomrule`, grouped headers
(Acc-2 has0/non0 under one `\\cmidrule`), numbers in math mode (`$82.10 \\pm 0.41$`) and a `\\dagger`
on significant cells. All text is escaped (`_ % & # $ { } ~ ^ \\`), and the Unicode symbols the
other formats use are mapped to LaTeX commands, so the file compiles with plain pdflatex.
"""

from __future__ import annotations

from reports.document import SYNTHETIC_BANNER, Figure, Paragraph, Report, metadata_rows, slug
from reports.tables import Column, StatTable, TextTable, fmt_delta, fmt_mean_std, full_caption

_SPECIAL = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "_": r"\_", "%": r"\%", "&": r"\&",
            "#": r"\#", "$": r"\$", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_UNICODE = {"±": r"$\pm$", "Δ": r"$\Delta$", "−": r"$-$", "–": "--", "—": "---", "†": r"$^{\dagger}$",
            "≤": r"$\le$", "≥": r"$\ge$", "α": r"$\alpha$", "↑": r"$\uparrow$", "↓": r"$\downarrow$",
            "×": r"$\times$", "…": r"\ldots{}", "→": r"$\rightarrow$", "²": r"$^{2}$", "·": r"$\cdot$",
            "“": "``", "”": "''"}


def escape(text: str) -> str:
    """Escape LaTeX specials and map the report's Unicode symbols; anything else passes through."""
    return "".join(_SPECIAL.get(ch, _UNICODE.get(ch, ch)) for ch in str(text))


PREAMBLE = r"""\documentclass[10pt]{article}
\usepackage[T1]{fontenc}
\usepackage[utf8]{inputenc}
\usepackage[margin=2cm]{geometry}
\usepackage{booktabs}
\usepackage{graphicx}
\usepackage{float}
"""


def render(report: Report) -> str:
    out = [PREAMBLE.rstrip(), r"\begin{document}", "", rf"\section*{{{escape(report.title)}}}", ""]
    for banner in report.banners + ([SYNTHETIC_BANNER] if report.synthetic else []):
        out += [_banner(banner), ""]
    out += [r"\noindent\begin{tabular}{@{}ll@{}}"]
    out += [rf"{escape(k.strip())} & {escape(v)} \\" for k, v in metadata_rows(report)]
    out += [r"\end{tabular}", ""]
    if report.conventions:
        out += [r"\begin{itemize}"] + [rf"\item {escape(c)}" for c in report.conventions] + [r"\end{itemize}", ""]
    for section in report.sections:
        out += [rf"\subsection*{{{escape(section.title)}}}", ""]
        out += [x for banner in section.banners for x in (_banner(banner), "")]
        for block in section.blocks:
            if isinstance(block, StatTable):
                out += stat_table(block) + [""]
            elif isinstance(block, TextTable):
                out += text_table(block) + [""]
            elif isinstance(block, Figure):
                out += [r"\begin{figure}[H]", r"\centering",
                        rf"\includegraphics[width=0.85\linewidth]{{{block.path.name}}}",
                        rf"\caption{{{escape(block.caption)}}}", rf"\label{{fig:{slug(block.id)}}}",
                        r"\end{figure}", ""]
            elif isinstance(block, Paragraph):
                out += [escape(block.text), ""]
    out += [r"\end{document}"]
    return "\n".join(out) + "\n"


def _banner(text: str) -> str:
    return rf"\noindent\fbox{{\parbox{{\dimexpr\linewidth-2\fboxsep\relax}}{{\textbf{{{escape(text)}}}}}}}"


def _caption(title: str, caption: str, notes: tuple[str, ...] = ()) -> str:
    text = f"{title}. {caption}"
    if notes:
        text += " " + " ".join(notes)
    return escape(text)


def _cell(t: StatTable, row, col: Column) -> str:
    cell = row.cells[col.key]
    if not cell.n:
        return "n/a"
    mean, std = fmt_mean_std(cell, col.decimals)
    text = f"${_m(mean)} \\pm {_m(std)}$" if std != "n/a" else f"${_m(mean)}$"
    if t.show_delta and not row.reference:
        mark = r"^{\dagger}" if cell.significant else ""
        text += rf" {{\scriptsize(${_m(fmt_delta(cell, col.decimals))}{mark}$)}}"
    return text


def _m(s: str) -> str:
    return r"\mathrm{n/a}" if s == "n/a" else s


def stat_table(t: StatTable) -> list[str]:
    lead = [t.row_header, *t.extra_headers] + (["$n$"] if t.show_n else [])
    lead_tex = [escape(h) if h != "$n$" else h for h in lead]
    spec = "l" * (1 + len(t.extra_headers)) + ("r" if t.show_n else "") + "c" * len(t.columns)
    grouped = any(c.sub for c in t.columns)
    header: list[str] = []
    if grouped:
        top, rules, i = [""] * len(lead), [], 0
        cols = list(t.columns)
        while i < len(cols):
            j = i
            while j + 1 < len(cols) and cols[i].sub and cols[j + 1].group == cols[i].group and cols[j + 1].sub:
                j += 1
            if cols[i].sub:
                arrow = f" {cols[i].arrow}" if cols[i].arrow else ""
                top.append(rf"\multicolumn{{{j - i + 1}}}{{c}}{{{escape(cols[i].group + arrow)}}}")
                start = len(lead) + i + 1
                rules.append(rf"\cmidrule(lr){{{start}-{start + j - i}}}")
            else:
                top += [""] * (j - i + 1)
            i = j + 1
        bottom = lead_tex + [escape(c.sub) if c.sub else escape(f"{c.header} {c.arrow}".strip()) for c in cols]
        header = [" & ".join(top) + r" \\", "".join(rules), " & ".join(bottom) + r" \\"]
    else:
        header = [" & ".join(lead_tex + [escape(f"{c.header} {c.arrow}".strip()) for c in t.columns]) + r" \\"]
    body = []
    for r in t.rows:
        cells = [escape(r.display_label)] + [escape(r.extra.get(h, "")) for h in t.extra_headers]
        if t.show_n:
            cells.append(str(r.n))
        cells += [_cell(t, r, c) for c in t.columns]
        body.append(" & ".join(cells) + r" \\")
    caption = _caption(t.title, full_caption(t), t.notes)
    return _float(spec, header, body, caption, t.id, wide=len(spec) > 6)


def text_table(t: TextTable) -> list[str]:
    numeric = list(t.numeric) or [False] * len(t.headers)
    spec = "".join("r" if n else "l" for n in numeric)
    header = [" & ".join(escape(h) for h in t.headers) + r" \\"]
    body = [" & ".join(escape(c) for c in r) + r" \\" for r in t.rows]
    return _float(spec, header, body, _caption(t.title, t.caption, t.notes), t.id, wide=len(spec) > 6)


def _float(spec: str, header: list[str], body: list[str], caption: str, id: str, *, wide: bool) -> list[str]:
    tabular = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule", *header, r"\midrule", *body, r"\bottomrule",
               r"\end{tabular}"]
    if wide:
        tabular = [r"\resizebox{\linewidth}{!}{%", *tabular, "}"]
    return [r"\begin{table}[H]", r"\centering", r"\small", rf"\caption{{{caption}}}", rf"\label{{tab:{slug(id)}}}",
            *tabular, r"\end{table}"]
