"""The email in a real browser: Debian's headless chromium at 600 and 375 px.

Chromium is driven directly (no DevTools client): a small script appended to a
copy of the email writes its measurements into the DOM, ``--dump-dom`` prints
it, and ``--screenshot`` saves a picture (light and dark) under the pytest
temp dir, compared with ``tests/golden/screens/email-*.png`` within a
tolerance (``tests/screens.py``); ``UPDATE_ARTIFACTS=1`` also copies it to
``tests/artifacts/`` for a human to look at.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from renderdata import LINKS, sample_digest, sample_entries
from screens import check_screenshot

from newsletter import match
from newsletter.render import Renderer

ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None and not os.environ.get("CI"),
        reason="needs Debian's chromium (apt-get install chromium); required under CI",
    ),
]

MEASURE = r"""<script>
const cards = [...document.querySelectorAll('p.t')].map(p => {
  const r = p.getBoundingClientRect();
  return {w: r.width, h: r.height, left: r.left, right: r.right,
          visible: getComputedStyle(p).visibility !== 'hidden' && r.width > 0 && r.height > 0};
});
const taps = [...document.querySelectorAll('a.b')].map(a => {
  const r = a.getBoundingClientRect();
  return {h: r.height, w: r.width, right: r.right, label: a.textContent};
});
const light = [...document.querySelectorAll('*')].filter(el => {
  const c = getComputedStyle(el).backgroundColor.match(/[\d.]+/g);
  if (!c || (c.length > 3 && +c[3] === 0)) return false;  // transparent
  const r = el.getBoundingClientRect();
  return r.width > 0 && r.height > 0 && (0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]) > 128;
}).map(el => el.tagName + '.' + el.className);
parent.postMessage(JSON.stringify({
  taps: taps,
  light: light,
  viewport: window.innerWidth,
  scrollWidth: document.documentElement.scrollWidth,
  bodyScrollWidth: document.body.scrollWidth,
  cards: cards,
  dark: matchMedia('(prefers-color-scheme: dark)').matches,
  bg: getComputedStyle(document.querySelector('.card')).backgroundColor,
}), '*');
</script>"""
# Headless chromium will not make a window narrower than 500 px, so the email
# is measured inside an iframe of the exact width, as a phone would show it.
FRAME = """<!doctype html><html><body style="margin:0">
<iframe src="{src}" width="{width}" height="2500" style="border:0;display:block"></iframe>
<script>
window.addEventListener('message', e => {{
  const out = document.createElement('pre'); out.id = 'measure'; out.textContent = e.data;
  document.body.appendChild(out);
}});
</script></body></html>"""


def chromium(tmp_path: Path, width: int, *args: str) -> str:
    assert CHROMIUM, "chromium is not installed: apt-get install chromium"
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={width},3000", *args,
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def email_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    digest = sample_digest(8)
    picked = {m.entry.id for m in digest.matches}
    trending = match.trending(sample_entries(), picked, 2)
    digest = replace(digest, trending=trending, notes=("Source arxiv has failed 3 times in a row.",))
    html = Renderer(site_title="Paper digest").email(digest, LINKS).html
    path = tmp_path_factory.mktemp("browser") / "digest.html"
    path.write_text(html, encoding="utf-8")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
@pytest.mark.parametrize("width", [600, 375])
def test_email_fits_and_shows_every_item(tmp_path: Path, email_file: Path, width: int, dark: bool) -> None:
    measured = tmp_path / "measured.html"
    measured.write_text(email_file.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"))
    extra = ["--force-dark-mode"] if dark else []  # sets prefers-color-scheme: dark, no forced inversion
    frame = tmp_path / "frame.html"
    frame.write_text(FRAME.format(src=measured.name, width=width))
    dom = chromium(tmp_path, 800, *extra, "--virtual-time-budget=3000", "--dump-dom", frame.as_uri())
    found = re.search(r'<pre id="measure">(.*?)</pre>', dom, re.S)
    assert found, "the measuring script did not run"
    m = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert m["viewport"] == width
    assert m["scrollWidth"] <= width, f"horizontal overflow: {m['scrollWidth']} > {width}"
    assert m["bodyScrollWidth"] <= width
    assert len(m["cards"]) == 10  # 8 picks, 2 trending
    for card in m["cards"]:
        assert card["visible"], card
        assert card["left"] >= 0 and card["right"] <= width, card
    assert m["dark"] is dark
    if dark:  # every section switches to the dark palette: no light segment left (the footer once stayed white)
        assert m["bg"] in ("rgb(13, 17, 23)",), m["bg"]
        assert m["light"] == [], m["light"]
    assert len(m["taps"]) >= 8 * 3 + 3  # abstract, PDF, Hugging Face per pick, and the footer's
    for tap in m["taps"]:
        assert tap["right"] <= width, tap
        if width < 481:  # phones: tap targets at least 44 px high (Apple HIG; WCAG 2.5.5)
            assert tap["h"] >= 44 and tap["w"] >= 44, tap
    shot = tmp_path / f"digest-{width}-{'dark' if dark else 'light'}.png"
    chromium(tmp_path, width, *extra, f"--screenshot={shot}", email_file.as_uri())
    assert shot.exists() and shot.stat().st_size > 10_000
    check_screenshot(shot, f"email-{width}{'-dark' if dark else ''}")  # tests/golden/screens/, within a tolerance
    if os.environ.get("UPDATE_ARTIFACTS") == "1":  # the design as committed: tests/artifacts/email-*.png
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copyfile(shot, ARTIFACTS / f"email-{width}{'-dark' if dark else ''}.png")
