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
    """Parse TOML *text*; a syntax error comes back with the line to look at and how to fix it.

    A byte-order mark (some Windows editors write one) is accepted.  Nesting
    deep enough to exhaust Python's stack (``x = [[[[...`` a thousand times)
    is a syntax error like any other, not a crash.
    """
    text = text.removeprefix("\ufeff")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raw = str(e)
        found = _LINE_NO.search(raw)
        line = int(found.group(1)) if found else None
        column = int(found.group(2)) if found else None
        message = _LINE_NO.sub("", raw).replace("(at end of document)", "").strip()
        line, hint = _explain_syntax(text, message, line, column)
        raise TomlSyntaxError(line, f"{message}: {hint}" if hint else message) from e
    except RecursionError as e:
        raise TomlSyntaxError(
            None,
            "lists or tables are nested far too deeply; a profile needs at most two levels, e.g. "
            'keywords = [{ text = "FP8", weight = 2 }]',
        ) from e


_OPENERS = {"[": "]", "{": "}"}


def _unclosed(text: str, before: int | None) -> int | None:
    """The line where the innermost bracket still open at line *before* (or the end) was opened."""
    stack: list[int] = []
    lines = text.splitlines()
    last = len(lines) if before is None else before
    for lineno, raw in enumerate(lines[:last], 1):
        quote = ""
        for ch in raw:
            if quote:
                quote = "" if ch == quote else quote
            elif ch in "\"'":
                quote = ch
            elif ch == "#":
                break
            elif ch in _OPENERS:
                stack.append(lineno)
            elif ch in "]}" and stack:
                stack.pop()
    return stack[-1] if stack else None


def _explain_syntax(text: str, message: str, line: int | None, column: int | None) -> tuple[int | None, str]:
    """The line a person should look at, and a fix, for one of tomllib's terse messages."""
    lines = text.splitlines()
    here = lines[line - 1] if line and line <= len(lines) else ""
    if message.startswith(("Unclosed array", "Unclosed inline table")):
        closer = "]" if "array" in message else "}"
        opened = _unclosed(text, line - 1 if line and column == 1 else line)
        if line is None or column == 1 or not here.strip():
            # the parser noticed only on the next line: the list was never closed
            where = opened or line
            return where, f'this list is not closed: end it with `{closer}`, e.g. keywords = ["a", "b"]'
        return line, (
            "items of a list are separated by commas and each text is in double quotes: "
            'look for a missing comma or quote, e.g. keywords = ["a", "b"]'
        )
    if message.startswith("Illegal character") and ("\\n" in message or "'\\n'" in message):
        return line, 'a text on this line has no closing quote: end it with ", e.g. name = "Ada"'
    if message.startswith("Illegal character"):
        return line, 'check this line: texts go in double quotes, e.g. name = "Ada"'
    if message.startswith("Invalid value"):
        return line, 'a value must be quoted text, a number, true/false or a [list], e.g. name = "Ada"'
    if message.startswith("Invalid statement"):
        return line, 'each line is `key = value` or a [section] header, e.g. name = "Ada"'
    if message.startswith("Cannot overwrite a value") or message.startswith("Cannot declare"):
        key = _KEY.match(here)
        named = f"`{key.group(1).strip()}` " if key else "this key "
        return line, f"{named}is set twice: keep only one of them"
    if message.startswith("Expected '=' after a key"):
        return line, 'write `key = value`, e.g. name = "Ada"'
    return line, ""


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


def _field_path(model: type[BaseModel], raw: Sequence[str | int]) -> tuple[list[str | int], str | None]:
    """A pydantic location without its union tags (``keywords.2.WeightedKeyword.wieght`` -> ``keywords.2.wieght``).

    Returns the location and the union member it went through, if any.
    """
    out: list[str | int] = []
    member = None
    current: Any = model
    tags: set[str] = set()
    for part in raw:
        if isinstance(part, int):
            out.append(part)
            continue
        if part.startswith("function-"):
            continue
        if part in tags:  # a union member's tag, e.g. "str" or "WeightedKeyword"
            member = part
            tags = set()
            continue
        out.append(part)
        info = getattr(current, "model_fields", {}).get(part)
        if info is not None:
            tags = _member_names(info.annotation)
            current = _model_in(info.annotation)
        else:
            tags = set()
    return out, member


def _member_names(annotation: Any) -> set[str]:
    """The tags pydantic gives the members of a union inside *annotation* (``str``, model class names)."""
    names: set[str] = set()
    for arg in getattr(annotation, "__args__", ()):
        names |= _member_names(arg)
        if isinstance(arg, type):
            names.add(arg.__name__)
        origin = getattr(arg, "__origin__", None)
        if isinstance(origin, type):  # Annotated[str, Field(...)]
            names.add(origin.__name__)
            names.add(f"constrained-{origin.__name__}")
    return names


def explain(
    error: ValidationError,
    model: type[BaseModel],
    text: str,
    examples: dict[str, str] | None = None,
    data: Any = None,
) -> list[tuple[int | None, str]]:
    """Turn pydantic errors into ``(line, message)`` pairs a person can act on, one per mistake.

    Where a value may be one of several kinds (a keyword is text or an inline
    table), only the errors of the kind that was written are kept: a typo in
    ``{ text = "FP8", wieght = 2 }`` is reported as an unknown key with a
    did-you-mean, not as "should be a string" (*data* is the parsed file).
    *examples* maps a field name to a line that is right, shown as the fix.
    """
    examples = examples or {}
    errors = error.errors()
    located = [(err, *_field_path(model, err["loc"])) for err in errors]
    members: dict[tuple[str | int, ...], set[str]] = {}
    for _, loc, member in located:
        if member is not None:
            members.setdefault(_container(loc), set()).add(member)
    out: list[tuple[int | None, str]] = []
    seen: set[str] = set()
    for err, loc, member in located:
        value = err.get("input")
        if member is not None and len(members.get(_container(loc), ())) > 1:
            wrote = _value_at(data, _container(loc))
            text_member = member in ("str", "constrained-str")
            if (text_member and isinstance(wrote, dict)) or (not text_member and isinstance(wrote, str)):
                continue  # the error of the kind the reader did not write
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        kind = err["type"]
        name = next((str(p) for p in reversed(loc) if isinstance(p, str)), "")
        example = examples.get(name, "")
        if kind == "extra_forbidden":
            fields = _fields_at(model, loc[:-1])
            msg = f"unknown key `{dotted}`{did_you_mean(str(loc[-1]), fields)}"
            if not msg.endswith("?"):
                msg += f" (allowed: {', '.join(sorted(fields))})" if fields else ""
        elif kind == "missing":
            msg = f"`{dotted}` is required: add it" + (f", e.g. {example}" if example else "")
        elif kind in ("too_long", "too_short") and isinstance(value, list | str):
            limit = err.get("ctx", {}).get("max_length") or err.get("ctx", {}).get("min_length")
            what = "items" if isinstance(value, list) else "characters"
            bound = "at most" if kind == "too_long" else "at least"
            msg = f"`{dotted}` has {len(value)} {what}; {bound} {limit} are allowed"
            if kind == "too_long" and isinstance(value, list):
                msg += ": keep the ones that matter most"
        else:
            text_msg = err["msg"].removeprefix("Value error, ")
            msg = f"`{dotted}`: {text_msg}"
            if kind.endswith("_type") or kind.endswith("_parsing"):
                msg += f" (got {_shown(value)})"
                if example:
                    msg += f"; write it like {example}"
        if msg not in seen:
            seen.add(msg)
            out.append((line_of(text, loc), msg))
    return out


def _container(loc: Sequence[str | int]) -> tuple[str | int, ...]:
    """The location of the value a union error is about (the list item, without the field inside it)."""
    cut = len(loc)
    while cut and not isinstance(loc[cut - 1], int):
        cut -= 1
    return tuple(loc[:cut]) if cut else tuple(loc)


def _value_at(data: Any, loc: Sequence[str | int]) -> Any:
    """The value the reader wrote at *loc* in the parsed file, or None."""
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _shown(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


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
