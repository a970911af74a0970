"""Render a `Report` as one self-contained HTML page (`report.html`).

No external resources: a little inline CSS, PNG figures embedded as base64 data URIs, tables as
real `<table>` elements with `id="tbl-<table id>"` and classes `mmsa-table stat-table|text-table`,
figures as `<figure id="fig-<id>">`. No scripts.
"""

from __future__ import annotations

import base64
from html import escape

from reports import stats
from reports.document import SYNTHETIC_BANNER, Figure, Paragraph, Report, metadata_rows, slug
from reports.tables import StatTable, TextTable, fmt_delta, fmt_mean_std, fmt_p

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 96rem;
       padding: 0 1rem; color: #1d1d1f; line-height: 1.4; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2.2rem; }
.banner { background: #fff3cd; border: 2px solid #d39e00; padding: .6rem 1rem; font-weight: 600; border-radius: 4px; }
table { border-collapse: collapse; font-size: .86rem; }
.table-wrap { overflow-x: auto; }
figure.table-block { margin: 1rem 0 1.6rem; }
figure.table-block > figcaption { font-size: .85rem; color: #333; max-width: 70rem; margin-bottom: .35rem; }
figure.table-block > figcaption b { color: #000; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #e3e3e3; white-space: nowrap; }
thead th { border-top: 2px solid #333; border-bottom: 1px solid #333; background: #fafafa; }
tbody tr:last-child td { border-bottom: 2px solid #333; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.reference td { background: #eef6ee; }
td.sig { background: #fde2e1; font-weight: 600; }
.delta { color: #555; font-size: .8em; }
table.meta td { border: none; padding: .1rem .8rem .1rem 0; }
ul.notes { font-size: .82rem; color: #444; margin-top: -1rem; }
figure { margin: 1rem 0 2rem; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .85rem; color: #333; }
"""


def render(report: Report) -> str:
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{escape(report.title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
           f"<header><h1>{escape(report.title)}</h1>"]
    if report.synthetic:
        out.append(f'<p class="banner synthetic" id="synthetic-banner">{escape(SYNTHETIC_BANNER)}</p>')
    out.append('<table class="meta" id="report-meta"><tbody>')
    out += [f"<tr><td><b>{escape(k.strip())}</b></td><td>{escape(v)}</td></tr>" for k, v in metadata_rows(report)]
    out.append("</tbody></table>")
    if report.conventions:
        out.append("<ul>" + "".join(f"<li>{escape(c)}</li>" for c in report.conventions) + "</ul>")
    out.append("</header>")
    n = 0
    for section in report.sections:
        out.append(f'<section id="sec-{slug(section.id)}"><h2>{escape(section.title)}</h2>')
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
    caption = t.caption
    if t.test:
        caption += (f" In parentheses: Δ = variant mean − reference mean. † = significant: {stats.TESTS[t.test]} "
                    f"over matched seeds, {stats.CORRECTION}-adjusted p ≤ α = {t.alpha:g}.")
    head = [f"<th>{escape(t.row_header)}</th>"] + [f"<th>{escape(h)}</th>" for h in t.extra_headers]
    if t.show_n:
        head.append('<th class="num">n</th>')
    head += [f'<th class="num" data-key="{escape(c.key)}">{escape(f"{c.header} {c.arrow}".strip())}</th>'
             for c in t.columns]
    rows = []
    for r in t.rows:
        cells = [f"<td>{escape(r.label)}{' (reference)' if r.reference else ''}</td>"]
        cells += [f"<td>{escape(r.extra.get(h, ''))}</td>" for h in t.extra_headers]
        if t.show_n:
            cells.append(f'<td class="num">{r.n}</td>')
        for c in t.columns:
            cell = r.cells[c.key]
            mean, std = fmt_mean_std(cell, c.decimals)
            text = escape(f"{mean} ± {std}") if cell.n else "n/a"
            classes, title = ["num"], ""
            if t.show_delta and not r.reference:
                text += f' <span class="delta">(Δ {escape(fmt_delta(cell, c.decimals))})</span>'
                title = f' title="{cell.n_pairs} pairs, p = {fmt_p(cell.p)}, Holm p = {fmt_p(cell.p_adj)}"'
                if cell.significant:
                    text += "<sup>†</sup>"
                    classes.append("sig")
            cells.append(f'<td class="{" ".join(classes)}" data-key="{escape(c.key)}"{title}>{text}</td>')
        cls = ' class="reference"' if r.reference else ""
        rows.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    inner = "<thead><tr>" + "".join(head) + "</tr></thead><tbody>" + "".join(rows) + "</tbody>"
    return _block(t.id, "stat-table", n, t.title, caption, inner)


def text_table(t: TextTable, n: int) -> str:
    numeric = list(t.numeric) or [False] * len(t.headers)
    cls = [' class="num"' if num else "" for num in numeric]
    head = "".join(f"<th{c}>{escape(h)}</th>" for h, c in zip(t.headers, cls))
    rows = "".join("<tr>" + "".join(f"<td{c}>{escape(v)}</td>" for v, c in zip(r, cls)) + "</tr>" for r in t.rows)
    return _block(t.id, "text-table", n, t.title, t.caption, f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody>")
