"""The import rules of ARCHITECTURE.md, checked over newsletter/*.py with ``ast``.

Every module has a row; a module imports only what its row allows, plus the
exceptions listed (each with its reason); an exception that the code no
longer needs fails too, so the list cannot rot.  Imports inside functions
and under ``TYPE_CHECKING`` count like any other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "newsletter"

CORE = {"types", "errors", "config"}
"""Anyone may import these: stage values, the error tree, settings."""
FETCH_ROOMS = {"sources", "addresses", "transport", "bodies", "politeness", "retry"}

ALLOWED: dict[str, set[str]] = {
    # the core: imports nothing of ours beyond the core
    "types": set(),
    "errors": set(),
    "_toml": set(),
    "config": {"_toml", "errors"},
    "logs": {"types", "errors"},
    # the fetch stage and its rooms
    "addresses": set(),
    "politeness": set(),
    "retry": set(),
    "transport": {"addresses"},
    "bodies": {"errors"},
    "sources": {"errors", "types"},
    "fetch": CORE | FETCH_ROOMS | {"__init__", "logs"},  # logs: a crash on one source is logged with its traceback
    # the other stages: values from types.py only; the composition root wires them
    "files": set(),
    "store": CORE | {"files", "sources"},
    # the shipped sentence-embedding model (onnxruntime, loaded lazily)
    "embed": {"errors"},
    # what a reader's ratings teach: per-reader models (pure numpy/scipy)
    "blas": set(),
    "learn": CORE | {"blas"},
    "match": CORE | {"embed", "learn", "blas"},
    "render": CORE,
    "delivery": CORE | {"retry", "files"},
    "ledger": CORE,
    "schedule": CORE,
    "profiles": CORE | {"_toml", "files"},
    # seeds: arXiv API lookups through the fetcher, a reader's library file
    "arxiv_lookup": CORE | {"fetch", "sources"},
    "library": CORE | {"arxiv_lookup", "files"},
    # the composition root: every stage, no surface
    "pipeline": CORE
    | FETCH_ROOMS
    | {"fetch", "store", "match", "render", "delivery", "ledger", "schedule", "profiles", "logs", "site", "files"}
    | {"health", "embed", "learn", "arxiv_lookup", "library"},
    # run health (`status`, `/healthz`) from indexed queries, without the pipeline
    "health": CORE | {"ledger", "schedule", "site", "store"},
    # the data folder's life: marker, lost state, interrupted sends (a part of the composition root)
    "site": CORE | {"ledger", "store", "files"},
    # connection limits for serve's HTTP side
    "httpguard": {"logs"},
    # ratings from the digest's links: recorded in the ledger, written into the profile file
    "ratings": CORE | {"ledger", "profiles"},
    # the surfaces, on top of the app
    "web": CORE | {"pipeline", "ratings", "schedule", "subscribe", "manage", "delivery", "files"},
    # the /subscribe form's pure parts, and the manage form's
    "subscribe": CORE | {"profiles"},
    "manage": CORE,
    "serve": CORE | {"pipeline", "web", "schedule", "logs", "httpguard", "health"},
    "cli": CORE | {"__init__", "pipeline", "logs", "serve", "health"},
    "__main__": {"cli"},
    "__init__": {"pipeline"},
}

EXCEPTIONS: dict[tuple[str, str], str] = {
    ("web", "profiles"): "unsubscribe writes `paused = true` into the profile file itself",
    ("cli", "store"): "status and fetch tables read Store/SourceState past App (issue 19)",
    ("cli", "profiles"): "`profiles check/schema` and `preview` read profile files past App (issue 19)",
}


def imports_of(path: Path) -> set[str]:
    """The modules of ours that *path* imports (``from . import __version__`` is ``__init__``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            absolute = node.level == 0 and (node.module or "").split(".")[0] == "newsletter"
            if node.level == 1 or absolute:
                inner = (node.module or "").split(".")[1:] if absolute else (node.module or "").split(".")
                if inner and inner[0]:
                    found.add(inner[0])
                else:
                    found.update(a.name if (PACKAGE / f"{a.name}.py").exists() else "__init__" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("newsletter."))
    found.discard(path.stem)
    return found


MODULES = sorted(p.stem for p in PACKAGE.glob("*.py"))


def test_every_module_has_a_row_and_every_row_a_module() -> None:
    assert set(MODULES) == set(ALLOWED), "add the new module to ALLOWED here and to ARCHITECTURE.md"


@pytest.mark.parametrize("module", MODULES)
def test_a_module_imports_only_what_its_row_and_the_listed_exceptions_allow(module: str) -> None:
    actual = imports_of(PACKAGE / f"{module}.py")
    excepted = {dep for (mod, dep) in EXCEPTIONS if mod == module}
    assert actual - ALLOWED[module] - excepted == set(), f"{module} imports past ARCHITECTURE.md"
    stale = excepted - actual
    assert stale == set(), f"{module} no longer imports {stale}: remove the exception"
    assert excepted & ALLOWED[module] == set(), "an exception that the row allows anyway"


def test_the_named_rules_hold() -> None:
    graph = {m: imports_of(PACKAGE / f"{m}.py") for m in MODULES}
    assert graph["types"] == set() and graph["errors"] == set()
    assert graph["render"] & {"delivery", "store", "ledger", "fetch", "pipeline"} == set()
    assert graph["match"] & {"store", "render", "delivery", "ledger", "fetch"} == set()
    surfaces = {"pipeline", "web", "serve", "cli"}
    stages = ["sources", "fetch", "store", "match", "render", "delivery", "ledger", "schedule", "profiles"]
    assert {s: graph[s] & surfaces for s in stages} == {s: set() for s in stages}
    assert "web" not in graph["pipeline"] and "cli" not in graph["serve"]
    uses = [
        m
        for m in MODULES
        for node in ast.walk(ast.parse((PACKAGE / f"{m}.py").read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute) and node.attr in ("HTTPTransport", "_pool")
    ]
    assert uses == []  # the network seam is httpx.BaseTransport over httpcore's public pool
