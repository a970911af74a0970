"""Structure of the three formats: LaTeX (booktabs, escaping, column counts), HTML (self-contained,
real tables, embedded PNGs), Markdown escaping."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from reports.render_latex import escape
from reports.tables import StatTable


def test_latex_escape():
    assert escape("a_b 50% & #1 $x {y} ~^\\") == (r"a\_b 50\% \& \#1 \$x \{y\} \textasciitilde{}"
                                                  r"\textasciicircum{}\textbackslash{}")
    assert escape("± Δ α ≤") == r"$\pm$ $\Delta$ $\alpha$ $\le$"


def _strip_math_and_escapes(line: str) -> str:
    line = re.sub(r"\{%$", "{", line)  # a deliberate end-of-line comment after an opening brace
    line = re.sub(r"\\[_%&#$]", "", line)
    return re.sub(r"\$[^$]*\$", "", line)


def test_latex_structure(built):
    tex = built.files["tex"].read_text()
    assert tex.startswith(r"\documentclass") and r"\usepackage{booktabs}" in tex and tex.rstrip().endswith(r"\end{document}")
    # environments balance and nest
    stack = []
    for kind, env in re.findall(r"\\(begin|end)\{(\w+)\}", tex):
        if kind == "begin":
            stack.append(env)
        else:
            assert stack and stack.pop() == env, f"\\end{{{env}}} does not close the open environment"
    assert not stack
    assert tex.count("{") - tex.count(r"\{") == tex.count("}") - tex.count(r"\}")
    tabulars = re.findall(r"\\begin\{tabular\}\{([lrc@{}]+)\}\n(.*?)\\end\{tabular\}", tex, re.S)
    booktabs = [t for t in tabulars if r"\toprule" in t[1]]
    assert len(booktabs) == len(built.report.tables())
    for spec, body in booktabs:
        assert body.count(r"\toprule") == body.count(r"\midrule") == body.count(r"\bottomrule") == 1
        ncols = len(spec)
        for line in body.splitlines():
            if not line.endswith(r"\\"):
                continue
            spans = sum(int(n) - 1 for n in re.findall(r"\\multicolumn\{(\d+)\}", line))
            assert _strip_math_and_escapes(line).count("&") + 1 + spans == ncols, line
    for line in tex.splitlines():
        bare = _strip_math_and_escapes(line)
        assert not re.search(r"(?<!\\)[_%#]", bare), f"unescaped special in: {line}"
        assert line.count("$") - line.count(r"\$") * 1 >= 0 and (line.count("$") - line.count(r"\$")) % 2 == 0, line
    assert r"\dagger" in tex and r"\pm" in tex and r"\cmidrule(lr){3-4}" in tex
    assert "scipy.stats.ttest\\_rel" in tex and "Holm--Bonferroni" in tex


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed (structure checked above)")
def test_latex_compiles(built, tmp_path):
    for f in built.files.values():
        shutil.copy(f, tmp_path / f.name)
    res = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "report.tex"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-3000:]


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_html_is_self_contained_with_tables_and_images(built):
    html = built.files["html"].read_text()
    p = _Collect()
    p.feed(html)
    tables = {a["id"]: a for t, a in p.tags if t == "table" and "mmsa-table" in a.get("class", "")}
    assert set(tables) == {f"tbl-{t.id}" for t in built.report.tables()}
    for t in built.report.tables():
        kind = "stat-table" if isinstance(t, StatTable) else "text-table"
        assert kind in tables[f"tbl-{t.id}"]["class"]
    imgs = [a for t, a in p.tags if t == "img"]
    assert len(imgs) == len(built.report.figures()) == 4
    for a in imgs:
        assert a["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(a["src"].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [t for t, _ in p.tags if t in ("script", "link", "iframe")]
    assert not re.search(r"""(src|href)=["'](https?:|//|file:)""", html)
    assert 'id="synthetic-banner"' in html
    assert html.count("<sup>†</sup>") == sum(c.significant for t in built.report.tables() if isinstance(t, StatTable)
                                             for r in t.rows for c in r.cells.values())


def test_markdown_escapes_pipes():
    from reports.render_markdown import _table

    assert _table(["a|b"], [["x|y"]], [False]) == [r"| a\|b |", "|---|", r"| x\|y |"]
