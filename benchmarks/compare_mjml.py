"""Which MJML compiler to ship: fidelity to npm ``mjml`` and speed, on our real template.

    python benchmarks/compare_mjml.py [--runs 7] [--npm-dir DIR] [--mrml-python PYTHON]
                                      [--no-screenshots] [--json OUT]

Compilers (each skipped when not installed):

- ``npm``: the reference, npm ``mjml`` run by ``node`` in a subprocess.  ``--npm-dir``
  (or ``$MJML_NPM_DIR``) is a folder where ``npm install mjml`` ran.
- ``mjml`` (pure Python, what we ship today), in this process.
- ``mjml-python`` and ``mrml`` (both wrap the Rust MRML), run by ``--mrml-python``
  (or ``$MRML_PYTHON``): the Python of another virtualenv, because ``mjml-python``
  installs a package folder ``mjml/`` that overwrites the pure-Python one.

Documents: ``template`` is ``templates/digest.mjml`` as the renderer compiles it
(Jinja tags still in it); ``filled`` is the same template already filled by Jinja
with a 25-card digest (what a compile-per-email renderer would compile); ``inline``
is a tiny probe using ``<mj-style inline="inline">``.

Fidelity, against npm's output of the same document: the ``difflib`` ratio of
normalised HTML tokens (whitespace collapsed, attributes and style declarations
sorted, Outlook conditional comments tokenised too), whether the inline CSS
reached the element, whether the Jinja tags survived the template compile and
the compiled template still fills to 25 cards, and (with chromium and Pillow) the
share of screenshot pixels that differ from npm's at 600 and 375 px.  Speed: the
median of ``--runs`` compiles after one warm-up, timed inside each compiler's own
process (no process start-up counted).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_render

from newsletter.render import Renderer

INLINE_PROBE = """<mjml><mj-head>
<mj-style inline="inline">.probe { color: #123456; font-weight: 700; }</mj-style>
</mj-head><mj-body><mj-section><mj-column>
<mj-text><p class="probe">inline me</p></mj-text>
</mj-column></mj-section></mj-body></mjml>"""

NODE_WORKER = r"""
const mjml = require('mjml');
const version = require('mjml/package.json').version;
let input = '';
process.stdin.on('data', d => { input += d; });
process.stdin.on('end', async () => {
  const req = JSON.parse(input);
  const results = {};
  for (const [name, src] of Object.entries(req.docs)) {
    try {
      const first = await mjml(src, {validationLevel: 'soft'});  // v5 returns a Promise
      const times = [];
      for (let i = 0; i < req.runs; i++) {
        const t0 = performance.now();
        await mjml(src, {validationLevel: 'soft'});
        times.push(performance.now() - t0);
      }
      results[name] = {html: first.html, times_ms: times,
                       errors: (first.errors || []).map(e => e.formattedMessage || String(e))};
    } catch (e) {
      results[name] = {error: String(e)};
    }
  }
  process.stdout.write(JSON.stringify({version, results}));
});
"""

PY_WORKER = r"""
import json, sys, time
from importlib.metadata import version
req = json.load(sys.stdin)
if req["kind"] == "mjml-python":
    import mjml
    ver = version("mjml-python")
    def compile(src):
        return mjml.mjml2html(src)
else:
    import mrml
    ver = version("mrml")
    def compile(src):
        return mrml.to_html(src).content
results = {}
for name, src in req["docs"].items():
    try:
        html = compile(src)
        times = []
        for _ in range(req["runs"]):
            t0 = time.perf_counter()
            compile(src)
            times.append((time.perf_counter() - t0) * 1000)
        results[name] = {"html": html, "times_ms": times}
    except Exception as e:
        results[name] = {"error": f"{type(e).__name__}: {e}"}
print(json.dumps({"version": ver, "results": results}))
"""

JINJA_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
CARD = re.compile(r'<p class="t"')
SPACE = re.compile(r"\s+")
CSS_PUNCT = re.compile(r"\s*([{}:;,>])\s*")


@dataclass
class Compiled:
    """One compiler's outputs: per document the HTML (or an error) and its timings."""

    name: str
    version: str
    html: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    times_ms: dict[str, list[float]] = field(default_factory=dict)


class _Tokens(HTMLParser):
    """HTML as a token list that ignores formatting differences between compilers."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tokens: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        parts = []
        for key, value in sorted(attrs):
            value = SPACE.sub(" ", value or "").strip()
            if key == "style":
                decls = (CSS_PUNCT.sub(r"\1", d).strip().lower() for d in value.split(";"))
                value = ";".join(sorted(d for d in decls if d))
            parts.append(f'{key}="{value}"')
        self.tokens.append(f"<{tag}{''.join(' ' + p for p in parts)}>")
        self._in_style = tag == "style"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        self.tokens.append(f"</{tag}>")
        self._in_style = False

    def handle_data(self, data: str) -> None:
        text = SPACE.sub(" ", data).strip()
        if self._in_style:
            text = CSS_PUNCT.sub(r"\1", text)
        if text:
            self.tokens.append(text)

    def handle_comment(self, data: str) -> None:
        # Outlook conditional comments hold markup that matters: tokenise it too.
        m = re.match(r"\s*(\[if [^\]]*\]>)(.*?)(<!\[endif\])?\s*$", data, re.DOTALL)
        if m:
            self.tokens.append(f"<!--{SPACE.sub(' ', m.group(1))}")
            self.tokens.extend(tokens(m.group(2)))
            self.tokens.append("<![endif]-->")
        else:
            self.tokens.append(f"<!--{SPACE.sub(' ', data).strip()}-->")

    def handle_decl(self, decl: str) -> None:
        self.tokens.append(f"<!{decl.lower()}>")


def tokens(html: str) -> list[str]:
    parser = _Tokens()
    parser.feed(html)
    parser.close()
    return parser.tokens


def similarity(html: str, reference: str) -> float:
    """difflib ratio of the normalised token lists: 1.0 means the same markup."""
    return difflib.SequenceMatcher(None, tokens(html), tokens(reference), autojunk=False).ratio()


def inlined(html: str) -> bool:
    """Did ``.probe { color: #123456 }`` from ``mj-style inline`` reach the element's style?"""
    return any(t.startswith("<p ") and 'class="probe"' in t and "color:#123456" in t for t in tokens(html))


def surviving_tags(source: str, html: str) -> int:
    """How many of the source's Jinja tags come out of the compiler unchanged."""
    kept = Counter(JINJA_TAG.findall(source)) & Counter(JINJA_TAG.findall(html))
    return sum(kept.values())


def documents() -> tuple[dict[str, str], dict[str, Any], Renderer]:
    renderer = Renderer()
    digest, links = bench_render.digests(1, 25)[0]
    context = renderer.email_context(digest, links)
    source = renderer.source("digest.mjml")
    filled = renderer.env.from_string(source).render(context)
    return {"template": source, "filled": filled, "inline": INLINE_PROBE}, context, renderer


def run_pure_python(docs: dict[str, str], runs: int) -> Compiled | str:
    try:
        import mjml
    except ImportError:
        return "not installed (pip install 'mjml[css_inlining]')"
    out = Compiled("mjml (Python)", version("mjml"))
    for name, src in docs.items():
        try:
            out.html[name] = mjml.mjml_to_html(src).html
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                mjml.mjml_to_html(src)
                times.append((time.perf_counter() - t0) * 1000)
            out.times_ms[name] = times
        except Exception as e:  # the port raises bare errors on markup it dislikes
            out.errors[name] = f"{type(e).__name__}: {e}"
    return out


def run_worker(name: str, cmd: list[str], cwd: Path | None, request: dict[str, Any]) -> Compiled | str:
    try:
        done = subprocess.run(
            cmd, input=json.dumps(request), capture_output=True, text=True, cwd=cwd, timeout=600, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"could not run: {e}"
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:] or ["no output"]
        return f"failed: {last[0][:200]}"
    answer = json.loads(done.stdout)
    out = Compiled(name, answer["version"])
    for doc, r in answer["results"].items():
        if "error" in r:
            out.errors[doc] = r["error"]
        else:
            out.html[doc] = r["html"]
            out.times_ms[doc] = r["times_ms"]
    return out


def run_npm(npm_dir: Path | None, docs: dict[str, str], runs: int) -> Compiled | str:
    node = shutil.which("node")
    if node is None:
        return "node is not installed"
    if npm_dir is None or not (npm_dir / "node_modules" / "mjml").is_dir():
        return "no npm mjml: pass --npm-dir DIR (or set MJML_NPM_DIR) where `npm install mjml` ran"
    return run_worker("npm mjml", [node, "-e", NODE_WORKER], npm_dir, {"docs": docs, "runs": runs})


def run_mrml(kind: str, python: str | None, docs: dict[str, str], runs: int) -> Compiled | str:
    if not python:
        return "no --mrml-python (or MRML_PYTHON): the Python of a venv with mjml-python and mrml"
    return run_worker(kind, [python, "-I", "-c", PY_WORKER], None, {"kind": kind, "docs": docs, "runs": runs})


def screenshot(chromium: str, html_file: Path, width: int, work: Path) -> Path:
    """A picture of *html_file* shown *width* px wide (in an iframe: headless windows are >= 500 px)."""
    height = 9000
    frame = work / f"{html_file.stem}-{width}.frame.html"
    frame.write_text(
        f'<!doctype html><html><body style="margin:0"><iframe src="{html_file.name}" width="{width}" '
        f'height="{height}" style="border:0;display:block"></iframe></body></html>',
        encoding="utf-8",
    )
    png = work / f"{html_file.stem}-{width}.png"
    cmd = [
        chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
        f"--user-data-dir={work / 'profile'}", f"--window-size={max(width, 500)},{height}",
        f"--screenshot={png}", frame.as_uri(),
    ]  # fmt: skip
    subprocess.run(cmd, capture_output=True, timeout=120, check=True)
    return png


def pixel_diff(png: Path, reference: Path) -> float:
    """Share of pixels that differ at all (0.0 = identical pictures)."""
    from PIL import Image, ImageChops

    with Image.open(png) as a, Image.open(reference) as b:
        a_rgb, b_rgb = a.convert("RGB"), b.convert("RGB")
        if a_rgb.size != b_rgb.size:
            return 1.0
        diff = ImageChops.difference(a_rgb, b_rgb).convert("L").point(lambda v: 255 if v else 0)
        histogram = diff.histogram()
        return histogram[255] / (a_rgb.size[0] * a_rgb.size[1])


def pixel_diffs(results: list[Compiled], widths: tuple[int, ...]) -> dict[str, dict[int, float]]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import PIL  # noqa: F401
    except ImportError:
        print("  (no pixel comparison: pip install pillow)")
        return {}
    if chromium is None:
        print("  (no pixel comparison: chromium is not installed)")
        return {}
    out: dict[str, dict[int, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shots: dict[str, dict[int, Path]] = {}
        for i, c in enumerate(results):
            if "filled" not in c.html:
                continue
            page = work / f"c{i}.html"
            page.write_text(c.html["filled"], encoding="utf-8")
            shots[c.name] = {w: screenshot(chromium, page, w, work) for w in widths}
        reference = shots.get(results[0].name)
        if reference is None:
            return {}
        for name, by_width in shots.items():
            out[name] = {w: pixel_diff(by_width[w], reference[w]) for w in widths}
    return out


def fills(c: Compiled, renderer: Renderer, context: dict[str, Any]) -> tuple[int, str]:
    """Cards after filling this compiler's compiled template with Jinja, and the filled HTML."""
    if "template" not in c.html:
        return 0, ""
    try:
        html = renderer.env.from_string(c.html["template"]).render(context)
    except Exception:  # a Jinja tag broken by the compiler
        return 0, ""
    return len(CARD.findall(html)), html


def median(values: list[float] | None) -> str:
    return f"{statistics.median(values):8.1f}" if values else "       -"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="timed compiles per document (after one warm-up)")
    ap.add_argument("--npm-dir", type=Path, default=os.environ.get("MJML_NPM_DIR") or None)
    ap.add_argument("--mrml-python", default=os.environ.get("MRML_PYTHON") or None)
    ap.add_argument("--no-screenshots", action="store_true")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)

    docs, context, renderer = documents()
    source_tags = len(JINJA_TAG.findall(docs["template"]))
    runners: list[tuple[str, Callable[[], Compiled | str]]] = [
        ("npm mjml", lambda: run_npm(args.npm_dir, docs, args.runs)),
        ("mjml (Python)", lambda: run_pure_python(docs, args.runs)),
        ("mjml-python", lambda: run_mrml("mjml-python", args.mrml_python, docs, args.runs)),
        ("mrml", lambda: run_mrml("mrml", args.mrml_python, docs, args.runs)),
    ]
    results: list[Compiled] = []
    for name, run in runners:
        got = run()
        if isinstance(got, str):
            print(f"skipped {name}: {got}")
        else:
            results.append(got)
    if not results:
        return []
    ref = results[0] if results[0].name == "npm mjml" else None
    if ref is None:
        print("no npm mjml: fidelity columns compare with nothing and stay empty")
    pixels = {} if args.no_screenshots or ref is None else pixel_diffs(results, (600, 375))
    ref_cards_html = fills(ref, renderer, context)[1] if ref else ""

    rows: list[dict[str, Any]] = []
    for c in results:
        cards, filled_from_template = fills(c, renderer, context)
        row: dict[str, Any] = {
            "compiler": c.name,
            "version": c.version,
            "template_ms": statistics.median(c.times_ms["template"]) if "template" in c.times_ms else None,
            "filled_ms": statistics.median(c.times_ms["filled"]) if "filled" in c.times_ms else None,
            "filled_kb": len(c.html["filled"].encode()) / 1000 if "filled" in c.html else None,
            "template_vs_npm": None,
            "filled_vs_npm": None,
            "filled_tmpl_vs_npm": None,
            "inline_css": inlined(c.html["inline"]) if "inline" in c.html else None,
            "jinja_tags": surviving_tags(docs["template"], c.html.get("template", "")),
            "cards": cards,
            "pixels": pixels.get(c.name, {}),
            "errors": c.errors,
        }
        if ref is not None:
            for doc in ("template", "filled"):
                if doc in c.html and doc in ref.html:
                    row[f"{doc}_vs_npm"] = similarity(c.html[doc], ref.html[doc])
            if filled_from_template and ref_cards_html:
                row["filled_tmpl_vs_npm"] = similarity(filled_from_template, ref_cards_html)
        rows.append(row)

    def ratio(v: float | None) -> str:
        return f"{v:6.3f}" if v is not None else "     -"

    print(f"\nMJML compilers on templates/digest.mjml, 25 cards; median of {args.runs} compiles, one warm-up")
    print(f"{'compiler':<15}{'version':<9}{'template ms':>12}{'filled ms':>10}{'filled KB':>10}")
    for r in rows:
        kb = f"{r['filled_kb']:10.1f}" if r["filled_kb"] is not None else "         -"
        t_ms = f"{r['template_ms']:12.1f}" if r["template_ms"] is not None else "           -"
        f_ms = f"{r['filled_ms']:10.1f}" if r["filled_ms"] is not None else "         -"
        print(f"{r['compiler']:<15}{r['version']:<9}{t_ms}{f_ms}{kb}")
    print("\nFidelity to npm mjml (token ratio of normalised HTML, 1.000 = same markup)")
    print(
        f"{'compiler':<15}{'template':>9}{'filled':>8}{'tmpl+fill':>10}{'inline CSS':>11}"
        f"{'Jinja tags':>11}{'cards':>6}{'px 600':>9}{'px 375':>9}"
    )
    for r in rows:
        px = [f"{r['pixels'][w] * 100:8.3f}%" if w in r["pixels"] else "        -" for w in (600, 375)]
        css = {True: "yes", False: "NO", None: "-"}[r["inline_css"]]
        print(
            f"{r['compiler']:<15}{ratio(r['template_vs_npm']):>9}{ratio(r['filled_vs_npm']):>8}"
            f"{ratio(r['filled_tmpl_vs_npm']):>10}{css:>11}{r['jinja_tags']:>6}/{source_tags:<4}"
            f"{r['cards']:>6}{px[0]}{px[1]}"
        )
        for doc, err in r["errors"].items():
            print(f"    {doc}: {err[:160]}")
    print(
        "\ntemplate/filled: the compiled template (Jinja tags as text) and the compiled 25-card document;"
        "\ntmpl+fill: this compiler's compiled template filled by Jinja, vs npm's compile of the filled document;"
        "\ncards: cards after that fill (want 25); px: share of screenshot pixels differing from npm's."
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str), encoding="utf-8")
    return rows


if __name__ == "__main__":
    main()
