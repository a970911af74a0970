"""Render a `Report` as one self-contained HTML page (`report.html`).

No external resources: inline CSS, PNG figures embedded as base64 data URIs, tables as real
`<table>` elements with `id="tbl-<table id>"` and classes `mmsa-table stat-table|text-table`,
figures as `<figure id="fig-<id>">`. No scripts.

Layout: the page fits a 1,280 px window without horizontal scrolling, and prints on A4 (`@page`,
`@media print`) with no column clipped — table cells wrap instead of widening the table (a mean ±
std stays on one line on screen, its Δ goes below it), and the budget banners are the first thing
on the page. `tests/reports/test_html_chromium.py` measures both in headless Chromium.
"""

from __future__ import annotations

import base64
from html import escape

from reports.document import SYNTHETIC_BANNER, Figure, Paragraph, Report, metadata_rows, slug
from reports.tables import SIG_MARK, StatTable, TextTable, fmt_delta, fmt_mean_std, fmt_p, full_caption

SCREEN_CSS = """
*, *::before, *::after { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem auto; max-width: 78rem;
       padding: 0 1rem; color: #1d1d1f; line-height: 1.4; overflow-wrap: break-word; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2.2rem; }
.banner { background: #fff3cd; border: 2px solid #d39e00; padding: .6rem 1rem; font-weight: 600; border-radius: 4px; }
.banner.budget { background: #fde2e1; border-color: #b02a37; color: #58151c; }
table { border-collapse: collapse; font-size: .82rem; max-width: 100%; }
.table-wrap { max-width: 100%; overflow-x: auto; }
figure.table-block { margin: 1rem 0 1.6rem; }
figure.table-block > figcaption { font-size: .85rem; color: #333; max-width: 70rem; margin-bottom: .35rem; }
figure.table-block > figcaption b { color: #000; }
th, td { padding: .25rem .45rem; border-bottom: 1px solid #e3e3e3; vertical-align: top; white-space: normal; }
td.text { overflow-wrap: break-word; }
.nw { white-space: nowrap; }
thead th { border-top: 2px solid #333; border-bottom: 1px solid #333; background: #fafafa; text-align: left; }
tbody tr:last-child td { border-bottom: 2px solid #333; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.ms { white-space: nowrap; }
.delta { display: block; color: #555; font-size: .8em; white-space: nowrap; }
tr.reference td { background: #eef6ee; }
tr.degenerate td:first-child { color: #b02a37; font-weight: 600; }
td.sig { background: #fde2e1; font-weight: 600; }
table.meta td { border: none; padding: .1rem .8rem .1rem 0; overflow-wrap: anywhere; }
ul.notes { font-size: .82rem; color: #444; margin-top: -1rem; }
figure { margin: 1rem 0 2rem; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .85rem; color: #333; }
"""
# A4 portrait, 12 mm margins: about 700 CSS px of line. Tables take the whole width, cells may wrap
# anywhere a space allows (mean and ± std on two lines if need be), nothing scrolls or is clipped.
PRINT_CSS = """
@page { size: A4 portrait; margin: 12mm; }
@media print {
  body { max-width: none; margin: 0; padding: 0; font-size: 9pt; }
  h1 { font-size: 14pt; } h2 { font-size: 11pt; margin-top: 1.2rem; break-after: avoid; }
  .table-wrap { overflow: visible; }
  table { width: 100%; font-size: 7pt; table-layout: auto; }
  th, td { padding: .1rem .2rem; }
  .ms, .delta { white-space: normal; }
  td.num { overflow-wrap: anywhere; }
  tr, figure, .banner { break-inside: avoid; }
  thead { display: table-header-group; }
  .banner, tr.reference td, td.sig, thead th { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  figure img { max-width: 100%; max-height: 120mm; }
}
"""
CSS = SCREEN_CSS + PRINT_CSS


def render(report: Report) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{escape(report.title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
           f"<header><h1>{escape(report.title)}</h1>"]
    for i, banner in enumerate(report.banners, start=1):  # the first screen: what these numbers are not
        out.append(f'<p class="banner budget" id="budget-banner-{i}">{escape(banner)}</p>')
    if report.synthetic:
        out.append(f'<p class="banner synthetic" id="synthetic-banner">{escape(SYNTHETIC_BANNER)}</p>')
    out.append('<table class="meta" id="report-meta"><tbody>')
    out += [f"<tr><td><b>{escape(k.strip())}</b></td><td>{escape(v)}</td></tr>" for k, v in metadata_rows(report)]
    out.append("</tbody></table>")
    if report.conventions:
        out.append('<ul id="conventions">' + "".join(f"<li>{escape(c)}</li>" for c in report.conventions) + "</ul>")
    out.append("</header>")
    n = 0
    for section in report.sections:
        out.append(f'<section id="sec-{slug(section.id)}"><h2>{escape(section.title)}</h2>')
        out += [f'<p class="banner budget">{escape(b)}</p>' for b in section.banners]
        for block in section.blocks:
            if isinstance(block, (StatTable, TextTable)):
                n += 1
                out.append(stat_table(block, n) if isinstance(block, StatTable) else text_table(block, n))
                if block.notes:
                    out.append('<ul class="notes">' + "".join(f"<li>{escape(x)}</li>" for x in block.notes) + "</ul>")
            elif isinstance(block, Figure):
                data = base64.b64encode(block.path.read_bytes()).decode("ascii")
                out.append(f'<figure id="fig-{slug(block.id)}"><img src="data:image/png;base64,{data}" '
                           f'alt="{escape(block.caption)}"><figcaption>{escape(block.caption)}</figcaption></figure>')
            elif isinstance(block, Paragraph):
                out.append(f"<p>{escape(block.text)}</p>")
        out.append("</section>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


def _block(t_id: str, kind: str, n: int, title: str, caption: str, inner: str) -> str:
    """A table in a <figure> whose <figcaption> sits above it (a <caption> would be squeezed to the
    table's width)."""
    return (f'<figure class="table-block" id="tblock-{slug(t_id)}"><figcaption id="cap-{slug(t_id)}"><b>Table {n}. '
            f"{escape(title)}.</b> {escape(caption)}</figcaption>" '<div class="table-wrap">'
            f'<table id="tbl-{slug(t_id)}" class="mmsa-table {kind}" aria-describedby="cap-{slug(t_id)}">'
            f"{inner}</table></div></figure>")


def stat_table(t: StatTable, n: int) -> str:
    head = [f"<th>{escape(t.row_header)}</th>"] + [f"<th>{escape(h)}</th>" for h in t.extra_headers]
    if t.show_n:
        head.append('<th class="num">n</th>')
    head += [f'<th class="num" data-key="{escape(c.key)}">{escape(f"{c.header} {c.arrow}".strip())}</th>'
             for c in t.columns]
    rows = []
    for r in t.rows:
        cells = [f'<td class="text">{escape(r.display_label)}</td>']
        cells += [f'<td class="text">{escape(r.extra.get(h, ""))}</td>' for h in t.extra_headers]
        if t.show_n:
            cells.append(f'<td class="num">{r.n}</td>')
        for c in t.columns:
            cell = r.cells[c.key]
            mean, std = fmt_mean_std(cell, c.decimals)
            text = f'<span class="ms">{escape(f"{mean} ± {std}")}</span>' if cell.n else "n/a"
            classes, title = ["num"], ""
            if t.show_delta and not r.reference:
                mark = f"<sup>{SIG_MARK}</sup>" if cell.significant else ""
                text += f' <span class="delta">(Δ {escape(fmt_delta(cell, c.decimals))}{mark})</span>'
                title = f' title="{cell.n_pairs} pairs, p = {fmt_p(cell.p)}, Holm p = {fmt_p(cell.p_adj)}"'
                if cell.significant:
                    classes.append("sig")
            cells.append(f'<td class="{" ".join(classes)}" data-key="{escape(c.key)}"{title}>{text}</td>')
        cls = [k for k, on in (("reference", r.reference), ("degenerate", r.degenerate)) if on]
        attr = f' class="{" ".join(cls)}"' if cls else ""
        rows.append(f"<tr{attr}>" + "".join(cells) + "</tr>")
    inner = "<thead><tr>" + "".join(head) + "</tr></thead><tbody>" + "".join(rows) + "</tbody>"
    return _block(t.id, "stat-table", n, t.title, full_caption(t), inner)


def text_table(t: TextTable, n: int) -> str:
    numeric = list(t.numeric) or [False] * len(t.headers)
    cls = [' class="num"' if num else ' class="text"' for num in numeric]
    head = "".join(f"<th{c}>{escape(h)}</th>" for h, c in zip(t.headers, cls))
    rows = "".join("<tr>" + "".join(f"<td{c}>{_numbers(v) if num else escape(v)}</td>"
                                    for v, c, num in zip(r, cls, numeric)) + "</tr>" for r in t.rows)
    return _block(t.id, "text-table", n, t.title, t.caption, f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody>")


def _numbers(text: str) -> str:
    """A numeric cell ("5 / 1.38e-06 / 8.28e-06 †") may wrap between its numbers, never inside one
    (a browser would break "8.28e-06" after its hyphen)."""
    return " ".join(f'<span class="nw">{escape(word)}</span>' for word in text.split(" "))
