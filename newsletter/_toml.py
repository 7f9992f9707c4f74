"""TOML helpers shared by config and profiles: load with line-numbered errors.

``tomllib`` gives no positions for values, so :func:`line_of` finds the line a
validation error points at by scanning the text for table headers and keys.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")
_LINE_NO = re.compile(r"\(at line (\d+), column (\d+)\)")


def _split_key(key: str) -> list[str]:
    return [part.strip().strip("\"'") for part in key.split(".")]


def read(path: Path) -> tuple[dict[str, Any], str]:
    """Read and parse *path*; raises ``OSError`` or ``TomlSyntaxError``."""
    text = path.read_text(encoding="utf-8")
    return loads(text), text


def loads(text: str) -> dict[str, Any]:
    """Parse TOML *text*; a syntax error comes back with its line number."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        found = _LINE_NO.search(str(e))
        line = int(found.group(1)) if found else None
        message = _LINE_NO.sub("", str(e)).strip()
        raise TomlSyntaxError(line, message) from e


class TomlSyntaxError(Exception):
    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def line_of(text: str, loc: Sequence[str | int]) -> int | None:
    """The line defining the deepest part of *loc* (a pydantic error location)."""
    table: list[str | int] = []
    counts: dict[tuple[str, ...], int] = {}
    best, best_len = None, 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        s = raw.strip()
        path: list[str | int]
        if s.startswith("[["):
            name = tuple(_split_key(s[2 : s.find("]]")]))
            counts[name] = counts.get(name, -1) + 1
            table = [*name, counts[name]]
            path = table
        elif s.startswith("["):
            table = list(_split_key(s[1 : s.find("]")]))
            path = table
        elif m := _KEY.match(raw):
            path = [*table, *_split_key(m.group(1))]
        else:
            continue
        n = len(path)
        if n > best_len and list(loc[:n]) == path:
            best, best_len = lineno, n
    return best


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


def explain(error: ValidationError, model: type[BaseModel], text: str) -> list[tuple[int | None, str]]:
    """Turn pydantic errors into ``(line, message)`` pairs a person can act on."""
    out: list[tuple[int | None, str]] = []
    for err in error.errors():
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        kind = err["type"]
        if kind == "extra_forbidden":
            fields = _fields_at(model, loc[:-1])
            msg = f"unknown key `{dotted}`{did_you_mean(str(loc[-1]), fields)}"
            if not msg.endswith("?"):
                msg += f" (allowed: {', '.join(sorted(fields))})" if fields else ""
        elif kind == "missing":
            msg = f"`{dotted}` is required: add it"
        else:
            text_msg = err["msg"].removeprefix("Value error, ")
            msg = f"`{dotted}`: {text_msg}"
            if kind.endswith("_type") or kind.endswith("_parsing"):
                msg += f" (got {err.get('input')!r})"
        out.append((line_of(text, loc), msg))
    return out


def _fields_at(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """Field names of the (nested) model that *loc* points into, for 'did you mean'."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        info = getattr(current, "model_fields", {}).get(part)
        if info is None:
            return []
        current = _model_in(info.annotation)
    fields = getattr(current, "model_fields", None)
    return list(fields) if fields else []


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
