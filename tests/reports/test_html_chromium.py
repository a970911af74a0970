"""The HTML report rendered by a real headless browser (Debian's `chromium`).

Set-up: `apt-get install -y chromium`. Without chromium the test skips, unless the environment
variable CI is set, where it fails (CI must exercise it).

Fit: a script measures the page after load and writes into the DOM (`--dump-dom`) what overflows:
the page wider than the window, a table wrapper that would scroll, a table ending past the window.
Print: the page's `@media print` rules applied on screen at A4's line width (210 mm − 2 × 12 mm
margins at 96 px/in = 703 px), and a real `--print-to-pdf` whose pages must be A4.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from reports.tables import StatTable

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]
PROBE = """<script>
window.addEventListener('load', function () {
  document.querySelectorAll('img').forEach(function (img) {
    img.setAttribute('data-natural-width', img.naturalWidth);
    img.setAttribute('data-natural-height', img.naturalHeight);
  });
  document.querySelectorAll('table.mmsa-table').forEach(function (t) {
    t.setAttribute('data-rendered-rows', t.rows.length);
    t.setAttribute('data-rendered-width', Math.round(t.getBoundingClientRect().width));
  });
  document.body.setAttribute('data-probe', 'done');
});
</script>"""


FIT_PROBE = """<script>
window.addEventListener('load', function () {
  var bad = [], de = document.documentElement, width = window.innerWidth;
  if (de.scrollWidth > width) bad.push('page ' + de.scrollWidth + ' > ' + width);
  document.querySelectorAll('.table-wrap').forEach(function (w) {
    var t = w.querySelector('table');
    if (w.scrollWidth > w.clientWidth) bad.push(t.id + ' scrolls ' + w.scrollWidth + ' > ' + w.clientWidth);
    if (t.getBoundingClientRect().right > width + 0.5) bad.push(t.id + ' ends at ' + t.getBoundingClientRect().right);
  });
  document.querySelectorAll('table, img, p, li, figcaption').forEach(function (e) {
    if (e.getBoundingClientRect().right > width + 0.5) bad.push((e.id || e.tagName) + ' past the window');
  });
  var banner = document.querySelector('.banner.budget');
  document.body.setAttribute('data-banner-bottom', banner ? Math.round(banner.getBoundingClientRect().bottom) : -1);
  document.body.setAttribute('data-overflow', bad.join('; '));
  document.body.setAttribute('data-window', window.innerWidth + 'x' + window.innerHeight);
  document.body.setAttribute('data-tables', document.querySelectorAll('table.mmsa-table').length);
  document.body.setAttribute('data-probe', 'done');
});
</script>"""
A4_LINE_PX = round((210 - 2 * 12) / 25.4 * 96)  # render_html.PRINT_CSS: @page A4, margin 12mm


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail("chromium is not installed but CI is set; install it with: apt-get install -y chromium")
        pytest.skip("chromium not installed (apt-get install -y chromium); under CI this test fails instead")
    return exe


def _run(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    res = subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _png_size(path: Path) -> tuple[int, int]:
    return struct.unpack(">II", path.read_bytes()[16:24])


@pytest.mark.slow
def test_html_renders_tables_and_images_in_chromium(built, tmp_path):
    exe = _chromium()
    html = built.files["html"].read_text()
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", PROBE + "\n</body>"))
    dom = _run(exe, tmp_path / "profile", "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()).stdout
    p = _Collect()
    p.feed(dom)
    body = next(a for t, a in p.tags if t == "body")
    assert body.get("data-probe") == "done", "the page's load event never fired"
    tables = {a["id"]: a for t, a in p.tags if t == "table" and "mmsa-table" in a.get("class", "")}
    for t in built.report.tables():
        rendered = tables[f"tbl-{t.id}"]
        n_rows = 1 + len(t.rows)  # header row + body rows
        assert int(rendered["data-rendered-rows"]) == n_rows, t.id
        assert int(rendered["data-rendered-width"]) > 100, t.id
    imgs = [a for t, a in p.tags if t == "img"]
    figures = built.report.figures()
    assert len(imgs) == len(figures)
    for a, fig in zip(imgs, figures):
        assert a["src"].startswith("data:image/png;base64,")
        assert (int(a["data-natural-width"]), int(a["data-natural-height"])) == _png_size(fig.path)
        assert int(a["data-natural-width"]) > 0
    sig = sum(c.significant for t in built.report.tables() if isinstance(t, StatTable)
              for r in t.rows for c in r.cells.values())
    assert sig and dom.count("<sup>†</sup>") == sig

    # and a screenshot that is not blank (kept under tmp_path to look at by hand)
    shot = tmp_path / "report.png"
    _run(exe, tmp_path / "profile", "--window-size=1400,2400", f"--screenshot={shot}", built.files["html"].as_uri())
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[:2] == (2400, 1400) and pixels.std() > 0.05


def _fit(exe: str, html: str, tmp_path: Path, *, width: int, height: int = 900, print_rules: bool = False) -> dict:
    """Load `html` at width × height and return the probe's findings (body attributes)."""
    if print_rules:  # the print stylesheet, measured on screen at A4's line width
        assert "@page { size: A4 portrait; margin: 12mm; }" in html and "@media print" in html
        html = html.replace("@media print", "@media all")
    page = tmp_path / f"fit-{width}-{int(print_rules)}.html"
    page.write_text(html.replace("</body>", FIT_PROBE + "\n</body>"))
    dom = _run(exe, tmp_path / "profile", f"--window-size={width},{height}", "--virtual-time-budget=10000",
               "--dump-dom", page.as_uri()).stdout
    p = _Collect()
    p.feed(dom)
    body = next(a for t, a in p.tags if t == "body")
    assert body.get("data-probe") == "done", "the page's load event never fired"
    inner_width, inner_height = map(int, body["data-window"].split("x"))
    assert inner_width == width  # (the height loses the browser's own bars)
    return {**body, "inner_height": inner_height, "tags": p.tags}


@pytest.mark.slow
@pytest.mark.parametrize("which", ["built", "mosi_methods"])
def test_html_fits_1280px_and_prints_on_a4(which, request, tmp_path):
    """(a) the quickstart's kind of report (sweep + ablation + methods), (b) a method comparison of all
    seven methods with has0 and non0 columns: nothing scrolls sideways at 1,280 px or on A4."""
    exe = _chromium()
    built = request.getfixturevalue(which)
    html = built.files["html"].read_text()
    sections = {s.id for s in built.report.sections}
    if which == "built":
        assert {"sweep-hscl-synthetic-s1", "ablation-hscl-ablation"} <= sections
    else:
        table = next(t for t in built.report.tables() if t.id == "methods")
        assert len(table.rows) == 7
        assert {"acc2_has0", "acc2_non0", "f1_has0", "f1_non0"} <= {c.key for c in table.columns}
    screen = _fit(exe, html, tmp_path, width=1280)
    assert screen["data-overflow"] == "" and int(screen["data-tables"]) == len(built.report.tables())
    if which == "mosi_methods":
        keys = {a.get("data-key") for t, a in screen["tags"] if t == "th"}
        assert {"acc2_has0", "acc2_non0", "mae", "corr"} <= keys
    printed = _fit(exe, html, tmp_path, width=A4_LINE_PX, print_rules=True)
    assert printed["data-overflow"] == ""
    pdf = tmp_path / "report.pdf"
    _run(exe, tmp_path / "profile", "--no-pdf-header-footer", f"--print-to-pdf={pdf}", built.files["html"].as_uri())
    boxes = {tuple(round(float(x)) for x in b.split()) for b in
             re.findall(rb"/MediaBox\s*\[([^\]]*)\]", pdf.read_bytes()) for b in [b.decode()]}
    assert boxes == {(0, 0, 595, 842)}, boxes  # A4 in points


@pytest.mark.slow
def test_smoke_banner_is_on_the_first_screen(mosi_store, tmp_path):
    from reports.build import build_report

    exe = _chromium()
    built = build_report(tracking_uri=mosi_store.uri, experiment="mmsa-mosi_clean", sweeps=["hscl-mosi-smoke"],
                         out_dir=tmp_path / "report", formats=("html",), log_artifacts=False)
    seen = _fit(exe, built.files["html"].read_text(), tmp_path, width=1280, height=900)
    assert seen["data-overflow"] == ""
    assert 0 < int(seen["data-banner-bottom"]) <= seen["inner_height"]  # visible without scrolling
