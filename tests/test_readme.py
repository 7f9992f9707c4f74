"""Every ``newsletter ...`` example in the README runs as written, in a site made by ``newsletter init``.

As sqlite-utils tests its docs: the commands are extracted from the README
(fenced ``sh`` blocks, indented code lines and inline code), in order, and run
as real processes of the installed console script.  Examples with a
placeholder (``READER``, ``FILE``, ``[--days N]``) are templates, not
examples, and are left out.  Two things differ from a reader's machine, both
because tests never leave loopback: the site's two source URLs (arXiv and
Hugging Face) are pointed at a local feed server serving the bundled samples,
and ``serve`` gets a free port instead of 8080; ``--open`` finds a stand-in
``xdg-open`` that records what it was asked to open.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from feedserver import FeedServer
from servekit import free_port

README = Path(__file__).resolve().parent.parent / "README.md"
PLACEHOLDER = re.compile(r"\b[A-Z]{1,}\b|\[")


def readme_commands() -> list[str]:
    """The README's ``newsletter`` commands, in order of appearance, each once."""
    text = README.read_text()
    found: list[tuple[int, str]] = []
    for m in re.finditer(r"```sh\n(.*?)```", text, re.S):
        for line in m.group(1).splitlines():
            found.extend((m.start(), part) for part in line.split("&&"))
    for m in re.finditer(r"^    (newsletter .+)$", text, re.M):
        found.append((m.start(), m.group(1)))
    for m in re.finditer(r"`(newsletter [^`]+)`", text):
        found.append((m.start(), " ".join(m.group(1).split())))
    out: list[str] = []
    for _, raw in sorted(found):
        cmd = raw.split("#")[0].strip().removeprefix(". .venv/bin/activate").strip()
        if not cmd.startswith("newsletter ") or PLACEHOLDER.search(cmd.removeprefix("newsletter ")):
            continue
        if cmd not in out:
            out.append(cmd)
    return out


def test_the_readme_has_examples_to_run() -> None:
    cmds = readme_commands()
    assert "newsletter demo" in cmds and "newsletter run --now" in cmds
    assert any(c.startswith("newsletter rank ") for c in cmds) and any(
        c.startswith("newsletter preview ") for c in cmds
    )


@pytest.mark.slow
def test_every_readme_example_runs_as_written_in_a_new_site(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "newsletter"
    script = str(exe) if exe.exists() else shutil.which("newsletter")
    assert script, "the console script is installed with the package"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    opened = tmp_path / "opened.txt"
    (bin_dir / "xdg-open").write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    (bin_dir / "xdg-open").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "NEWSLETTER_SECRET": "s" * 32}
    env.pop("BROWSER", None)

    def run(cmd: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        args = [script, *cmd.split()[1:]]
        return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)

    cmds = readme_commands()
    with FeedServer() as server:
        site: Path | None = None
        for cmd in cmds:
            if cmd.startswith("newsletter init"):
                result = run(cmd, tmp_path)
                assert result.returncode == 0, (cmd, result.stdout, result.stderr)
                site = tmp_path / cmd.split()[2]
                config = site / "newsletter.toml"
                text = config.read_text()
                text = text.replace("https://rss.arxiv.org/rss/cs.LG", server.url("/arxiv.rss"))
                text = text.replace("https://huggingface.co/api/daily_papers", server.url("/hf.json"))
                text = text.replace('kind = "arxiv"', 'kind = "arxiv"\nallow_private = true')
                text = text.replace('kind = "hf"', 'kind = "hf"\nallow_private = true')
                config.write_text(text)
                break
        assert site is not None, "the README sets up a site with `newsletter init`"
        for cmd in cmds:
            if cmd.startswith("newsletter init"):
                continue
            where = tmp_path / "demo" if cmd.startswith("newsletter demo") else site
            where.mkdir(exist_ok=True)
            if cmd.startswith("newsletter serve"):
                port = free_port()
                args = [script, *cmd.split()[1:]]
                if "--port" in args:
                    args[args.index("--port") + 1] = str(port)
                else:
                    args += ["--port", str(port)]
                proc = subprocess.Popen(args, cwd=where, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                try:
                    deadline = time.monotonic() + 60
                    while True:
                        try:
                            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                                break
                        except httpx.HTTPError:
                            pass
                        assert time.monotonic() < deadline and proc.poll() is None, "serve did not come up"
                        time.sleep(0.2)
                finally:
                    proc.send_signal(signal.SIGTERM)
                    assert proc.wait(timeout=60) == 0, cmd
                continue
            result = run(cmd, where)
            assert result.returncode == 0, (cmd, result.stdout, result.stderr)
            assert "Traceback" not in result.stderr, (cmd, result.stderr)
    assert opened.exists() and opened.read_text().strip().endswith(".html"), "--open opened the preview"
