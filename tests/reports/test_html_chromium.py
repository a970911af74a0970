"""The HTML report rendered by a real headless browser (Debian's `chromium`).

Set-up: `apt-get install -y chromium`. Without chromium the test skips, unless the environment
variable CI is set, where it fails (CI must exercise it).
"""

from __future__ import annotations

import os
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
