"""A reader's reference library as seeds: ``papers_from = "library.bib"`` (BibTeX, RIS or a Zotero CSV export).

:func:`read_library` reads the file the way :mod:`newsletter.profiles` reads
a profile: a regular file inside the profiles folder only, at most
:data:`MAX_BYTES`, at most :data:`MAX_RECORDS` records.  From each record it
takes the arXiv id (``eprint`` with ``archivePrefix = arXiv``, an arxiv.org
URL, the DOI ``10.48550/arXiv.X``, "arXiv:X" in a journal or note field), the
DOI, title, abstract and authors.  A bad record is a
:class:`~newsletter.errors.LibraryError` naming the file and its line, and
never costs the reader the other records.

:func:`library_seeds` turns records into :class:`~newsletter.types.SeedPaper`:
a record with an abstract is a seed as it is; one with an arXiv id but no
abstract is looked up (:mod:`newsletter.arxiv_lookup`); one with a title only
is a seed from its title.

The BibTeX reader is our own, not ``bibtexparser``: bibtexparser 2.1 took
40 s on 0.5 MB of ``@a{`` repeated and 5.4 s on 5,000 ordinary entries
(measured here), and a reader's file is untrusted input.  This one is one
linear pass (braces found by regex, values capped), and keeps the line of
every record and field for the error messages.
"""

from __future__ import annotations

import bisect
import csv
import io
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .arxiv_lookup import ArxivLookup, arxiv_id
from .errors import LibraryError, NewsletterError
from .files import FileTooLarge, NotRegularFile, read_regular
from .types import SeedPaper

MAX_BYTES = 5_000_000
"""A library file larger than this is refused unread (a 2,000-paper export with abstracts is ~3 MB)."""
MAX_RECORDS = 2_000
"""Records read from one file; the rest are reported, not read."""
MAX_VALUE = 100_000
"""Longest field value (an abstract is a few thousand characters)."""
MAX_PROBLEMS = 50
"""Problems reported per file; more are summed up in one line."""
MAX_DEPTH = 64
"""Brace nesting in a BibTeX value (real files: 3 or 4)."""
FORMATS = {".bib": "bibtex", ".bibtex": "bibtex", ".ris": "ris", ".csv": "csv"}


@dataclass(frozen=True, slots=True)
class LibraryRecord:
    """One reference as read from the file, before any lookup."""

    line: int
    key: str = ""
    """The BibTeX key or the Zotero item key, for messages."""
    title: str = ""
    abstract: str = ""
    authors: tuple[str, ...] = ()
    arxiv_id: str | None = None
    doi: str | None = None


@dataclass(frozen=True, slots=True)
class Library:
    path: Path
    records: tuple[LibraryRecord, ...]
    problems: tuple[LibraryError, ...]
    """One per bad record or field; the file was read all the same."""


@dataclass
class _Reading:
    """What a parser collects: records and (line, message) problems, with the caps applied."""

    path: Path
    records: list[LibraryRecord] = field(default_factory=list)
    problems: list[tuple[int | None, str]] = field(default_factory=list)
    attempts: int = 0
    """Records started, good or bad: the cap counts these, so a file of broken records stops too."""

    def full(self, line: int) -> bool:
        if self.attempts < MAX_RECORDS:
            self.attempts += 1
            return False
        self.problem(line, f"more than {MAX_RECORDS:,} records: the rest of the file is not read; split it")
        return True

    def problem(self, line: int | None, message: str) -> None:
        self.problems.append((line, message))

    def done(self) -> Library:
        shown = self.problems[:MAX_PROBLEMS]
        errors = [LibraryError(self.path, line, message) for line, message in shown]
        if len(self.problems) > MAX_PROBLEMS:
            errors.append(LibraryError(self.path, None, f"and {len(self.problems) - MAX_PROBLEMS:,} more problems"))
        return Library(self.path, tuple(self.records), tuple(errors))


# -- reading the file ------------------------------------------------------------


def resolve_library_path(papers_from: Path, folder: Path) -> Path:
    """*papers_from* (already joined to the profile's folder) if it stays inside *folder*; else LibraryError."""
    try:
        target = papers_from.resolve()
        root = folder.resolve()
    except (OSError, RuntimeError) as e:
        raise LibraryError(papers_from, None, f"cannot resolve the path ({e}); fix papers_from") from e
    if not target.is_relative_to(root):
        raise LibraryError(
            papers_from, None, "is outside the profiles folder; copy the library into it and name it in papers_from"
        )
    return target


def read_library(papers_from: Path, folder: Path) -> Library:
    """Read and parse a library file; whole-file problems raise :class:`LibraryError`, bad records are listed.

    *folder* is the profiles folder: the file (after following links) must be
    inside it, a regular file (a FIFO would hang the run, ``/dev/zero`` never
    ends) and at most :data:`MAX_BYTES`.
    """
    path = resolve_library_path(papers_from, folder)
    shown = papers_from
    try:
        raw, _ = read_regular(path, MAX_BYTES)
    except NotRegularFile as e:
        raise LibraryError(shown, None, "is not a regular file (a pipe, device or folder); export to a file") from e
    except FileTooLarge as e:
        raise LibraryError(
            shown, None, f"is {e.size_said}, over the {MAX_BYTES:,} byte cap: export fewer papers"
        ) from e
    except FileNotFoundError as e:
        raise LibraryError(shown, None, "no such file; check papers_from in the profile (relative to it)") from e
    except OSError as e:
        raise LibraryError(shown, None, f"cannot read the file ({e.strerror or e}); check its permissions") from e
    text = _decode(raw, shown)
    kind = FORMATS.get(path.suffix.lower()) or _sniff(text)
    if kind is None:
        raise LibraryError(shown, None, "is not BibTeX, RIS or a Zotero CSV export; name it .bib, .ris or .csv")
    reading = _Reading(shown)
    {"bibtex": _bibtex, "ris": _ris, "csv": _zotero_csv}[kind](text, reading)
    if not reading.records and not reading.problems:
        reading.problem(None, f"has no {kind} records; is it the right file?")
    return reading.done()


def _decode(raw: bytes, path: Path) -> str:
    if b"\0" in raw[:65536]:
        line = raw[: raw.index(b"\0")].count(b"\n") + 1
        raise LibraryError(path, line, "is a binary file, not a text export; export the library as BibTeX or RIS")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")  # older BibTeX files are Latin-1 / Windows-1252


def _sniff(text: str) -> str | None:
    head = text[:4096]
    if re.search(r"^TY  - ", head, re.MULTILINE):
        return "ris"
    if re.search(r"^\s*@[A-Za-z]+\s*[{(]", head, re.MULTILINE):
        return "bibtex"
    if head.startswith(('"Key"', "Key,")):
        return "csv"
    return None


class _Lines:
    """Offset -> 1-based line number in O(log n), for a text read once."""

    def __init__(self, text: str) -> None:
        self._starts = [m.end() for m in re.finditer("\n", text)]

    def __call__(self, offset: int) -> int:
        return bisect.bisect_right(self._starts, offset) + 1


# -- BibTeX ------------------------------------------------------------------------

_AT = re.compile(r"@[ \t]*([A-Za-z][\w-]*)[ \t\r\n]*([{(])")
_BRACE = re.compile(r"[{}]")
_BRACE_OR_QUOTE = re.compile(r'[{}"]')
_NEW_ENTRY = re.compile(r"\n[ \t]*@[A-Za-z]+[ \t]*[{(]")
_KEY = re.compile(r"[ \t\r\n]*([^\s,{}()\"=]*)[ \t\r\n]*")
_NAME = re.compile(r"[ \t\r\n]*([^\s,={}()\"#%'~]+)[ \t\r\n]*")
_WORD = re.compile(r"[A-Za-z0-9_.:+/-]+")
_WS = re.compile(r"[ \t\r\n]*")
_ID_LIKE = re.compile(r"(?:arxiv:)?\d{4}\.\d+(?:v\d+)?", re.IGNORECASE)
_MONTHS = {m.lower(): m for m in ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")}


class _Bad(Exception):
    def __init__(self, message: str, at: int) -> None:
        super().__init__(message)
        self.at = at
        """Where to look for the next record from."""


@dataclass
class _BibEntry:
    kind: str
    key: str
    fields: dict[str, str]
    lines: dict[str, int]


class _BibParser:
    """One linear pass over a BibTeX text.

    A value never runs past the next ``@type{`` at the start of a line (the
    usual sign of a missing ``}``), found once per stretch and remembered, so
    no part of the text is scanned twice, whatever the file holds.
    """

    def __init__(self, text: str, reading: _Reading) -> None:
        self.text, self.reading = text, reading
        self.line = _Lines(text)
        self.macros: dict[str, str] = dict(_MONTHS)
        self._from, self._next = -1, -1

    def next_entry(self, pos: int) -> int:
        """Offset of the ``@`` of the first line-start record after *pos* (or the end of the text)."""
        if not (self._from <= pos <= self._next):
            text = self.text
            newline = text.rfind("\n", max(0, pos - 256), pos)
            m = _NEW_ENTRY.search(text, newline if newline >= 0 else pos)
            while m is not None and m.start() + m.group(0).index("@") < pos:
                m = _NEW_ENTRY.search(text, m.end())
            self._from, self._next = pos, (m.start() + m.group(0).index("@") if m else len(text))
        return self._next

    def ws(self, pos: int) -> int:
        m = _WS.match(self.text, pos)
        return m.end() if m else pos

    def run(self) -> None:
        text, reading, line = self.text, self.reading, self.line
        pos = 0
        while True:
            m = _AT.search(text, pos)
            if m is None:
                return
            kind, start = m.group(1).lower(), m.start()
            if kind == "comment":
                pos = m.end()
                continue
            if kind not in ("string", "preamble") and reading.full(line(start)):
                return
            try:
                pos, entry = self.entry(m.end(), m.group(2), kind)
            except _Bad as e:
                reading.problem(line(start), f"@{kind}: {e}; this record is skipped")
                pos = self.next_entry(max(e.at, m.end()))
                continue
            if entry is not None:
                _keep(_bib_record(entry, line(start), reading), reading)

    def entry(self, pos: int, opener: str, kind: str) -> tuple[int, _BibEntry | None]:
        text, line = self.text, self.line
        closer = "}" if opener == "{" else ")"
        if kind == "preamble":
            _, pos = self.value(pos)
            pos = self.ws(pos)
            if not text.startswith(closer, pos):
                raise _Bad(f"expected {closer!r} to end the @preamble", pos)
            return pos + 1, None
        key = ""
        if kind != "string":
            m = _KEY.match(text, pos)
            key, pos = (m.group(1), m.end()) if m else ("", pos)
            if text.startswith(closer, pos):
                return pos + 1, _BibEntry(kind, key, {}, {})
            if not text.startswith(",", pos):
                raise _Bad(f"expected a comma after the key {key!r}", pos)
            pos += 1
        fields: dict[str, str] = {}
        lines: dict[str, int] = {}
        while True:
            pos = self.ws(pos)
            if text.startswith(closer, pos):
                pos += 1
                break
            if pos >= len(text):
                raise _Bad(f"the file ends inside the record (a missing {closer!r}?)", pos)
            m = _NAME.match(text, pos)
            if m is None or not text.startswith("=", m.end()):
                got = text[pos : pos + 20].split("\n")[0]
                raise _Bad(f"expected a field like title = {{...}} at line {line(pos)}, found {got!r}", pos)
            name, field_at = m.group(1).lower(), pos
            value, pos = self.value(m.end() + 1)
            if name in fields:
                raise _Bad(f"the field {name!r} appears twice (lines {lines[name]} and {line(field_at)})", pos)
            fields[name], lines[name] = value, line(field_at)
            pos = self.ws(pos)
            if text.startswith(",", pos):
                pos += 1
            elif not text.startswith(closer, pos):
                got = text[pos : pos + 20].split("\n")[0]
                raise _Bad(f"expected ',' or {closer!r} after {name!r} at line {line(pos)}, found {got!r}", pos)
        if kind == "string":
            self.macros.update(fields)
            return pos, None
        return pos, _BibEntry(kind, key, fields, lines)

    def value(self, pos: int) -> tuple[str, int]:
        """One field value: ``{...}``, ``"..."``, a number or a @string name, joined by ``#``."""
        text = self.text
        parts: list[str] = []
        while True:
            pos = self.ws(pos)
            ch = text[pos : pos + 1]
            if ch in ("{", '"'):
                end = self.group(pos)
                parts.append(text[pos + 1 : end - 1])
                pos = end
            else:
                m = _WORD.match(text, pos)
                if m is None:
                    raise _Bad(f"expected a value in braces or quotes at line {self.line(pos)}", pos)
                word = m.group(0)
                parts.append(word if word.isdigit() else self.macros.get(word.lower(), word))
                pos = m.end()
            pos = self.ws(pos)
            if not text.startswith("#", pos):
                return "".join(parts), pos
            pos += 1

    def group(self, pos: int) -> int:
        """The offset just past the end of the ``{...}`` or ``"..."`` value starting at *pos*."""
        quoted = self.text[pos] == '"'
        limit = min(self.next_entry(pos), pos + MAX_VALUE)
        depth = 0 if quoted else 1
        for m in (_BRACE_OR_QUOTE if quoted else _BRACE).finditer(self.text, pos + 1, limit):
            ch = m.group(0)
            if ch == "{":
                depth += 1
                if depth > MAX_DEPTH:
                    raise _Bad(f"braces nested more than {MAX_DEPTH} deep at line {self.line(m.start())}", m.start())
            elif ch == "}":
                depth -= 1
                if depth == 0 and not quoted:
                    return m.end()
                depth = max(depth, 0)
            elif depth == 0:
                return m.end()
        close = '"' if quoted else "}"
        if limit == pos + MAX_VALUE:
            raise _Bad(f"a value longer than {MAX_VALUE:,} characters (a missing {close!r}?)", limit)
        if limit < len(self.text):
            raise _Bad(f"a missing {close!r}: the record at line {self.line(limit)} starts inside this value", limit)
        raise _Bad(f"the file ends inside a value (a missing {close!r}?)", limit)


def _bibtex(text: str, reading: _Reading) -> None:
    _BibParser(text, reading).run()


def _bib_record(entry: _BibEntry, line: int, reading: _Reading) -> LibraryRecord:
    f = entry.fields
    found, problems = _bib_arxiv(entry)
    for at, message in problems:
        reading.problem(at, f"record {entry.key!r}: {message}")
    return LibraryRecord(
        line=line,
        key=entry.key,
        title=latex_to_text(f.get("title", "")),
        abstract=latex_to_text(f.get("abstract", "")),
        authors=bibtex_authors(f.get("author", "")),
        arxiv_id=found,
        doi=_doi(f.get("doi", "")),
    )


def _bib_arxiv(entry: _BibEntry) -> tuple[str | None, list[tuple[int, str]]]:
    """The record's arXiv id, and a problem for each malformed or missing one it names (with the field's line)."""
    f, lines = entry.fields, entry.lines
    problems: list[tuple[int, str]] = []
    prefix = (f.get("archiveprefix") or f.get("eprinttype") or "").strip().lower()
    for name in ("eprint", "arxiv", "arxivid"):
        value = f.get(name, "").strip()
        if not value or (name == "eprint" and prefix not in ("", "arxiv")):
            continue
        found = arxiv_id(value)
        if found:
            return found, problems
        if name != "eprint" or prefix == "arxiv" or _ID_LIKE.fullmatch(value):
            problems.append((lines[name], f"{name} = {{{value[:40]}}} is not an arXiv id; write it like 2402.15627"))
    for name in ("doi", "url", "journal", "note", "howpublished", "eprint"):
        found = find_arxiv_id(f.get(name, ""))
        if found:
            return found, problems
    if prefix == "arxiv" and "eprint" not in f:
        field = "archiveprefix" if "archiveprefix" in f else "eprinttype"
        problems.append((lines[field], f"{field} = {{arXiv}} but no eprint field; add eprint = {{2402.15627}}"))
    return None, problems


# -- RIS -------------------------------------------------------------------------------

_RIS_LINE = re.compile(r"^([A-Z][A-Z0-9])  -(?: (.*))?$")


def _ris(text: str, reading: _Reading) -> None:
    current: dict[str, list[str]] | None = None
    start = 0
    last: str | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        row = raw.rstrip()
        if not row.strip():
            continue
        m = _RIS_LINE.match(row)
        if m is None:
            if current is not None and last is not None:  # a wrapped value (some exporters wrap abstracts)
                current[last][-1] += " " + row.strip()
            else:
                reading.problem(number, f"not a RIS line ({row[:40]!r}); a record starts with 'TY  - '")
            continue
        tag, value = m.group(1), (m.group(2) or "").strip()
        if tag == "TY":
            if current is not None:
                reading.problem(start, "record has no 'ER  - ' line before the next 'TY  - '; read it anyway")
                _keep(_ris_record(current, start, reading), reading)
            if reading.full(number):
                return
            current, start, last = {}, number, None
        elif current is None:
            reading.problem(number, f"'{tag}  - ' outside a record; a record starts with 'TY  - '")
            continue
        elif tag == "ER":
            _keep(_ris_record(current, start, reading), reading)
            current, last = None, None
            continue
        if len(value) > MAX_VALUE:
            reading.problem(number, f"a value longer than {MAX_VALUE:,} characters; this field is skipped")
            continue
        current.setdefault(tag, []).append(value)
        last = tag
    if current is not None:
        reading.problem(start, "the last record has no 'ER  - ' line; read it anyway")
        _keep(_ris_record(current, start, reading), reading)


def _ris_record(fields: dict[str, list[str]], line: int, reading: _Reading) -> LibraryRecord:
    def first(*tags: str) -> str:
        return next((v for t in tags for v in fields.get(t, []) if v), "")

    found = None
    for tag in ("DO", "UR", "L1", "L2", "L3", "L4", "M1", "M3", "N1", "JO", "JF", "T2", "AN", "ID"):
        found = next((f for v in fields.get(tag, []) if (f := find_arxiv_id(v))), None)
        if found:
            break
    return LibraryRecord(
        line=line,
        key=first("ID", "AN"),
        title=_clean(first("TI", "T1", "CT", "BT")),
        abstract=_clean(first("AB", "N2")),
        authors=tuple(_person(a) for t in ("AU", "A1") for a in fields.get(t, []) if a)[:500],
        arxiv_id=found,
        doi=_doi(first("DO")),
    )


# -- Zotero CSV ----------------------------------------------------------------------


def _zotero_csv(text: str, reading: _Reading) -> None:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        reading.problem(1, "no header row; export from Zotero with File > Export Library > CSV")
        return
    columns = {name.strip().lower(): i for i, name in enumerate(header)}
    if "title" not in columns:
        reading.problem(1, "no Title column: is this a Zotero CSV export?")
        return
    start = reader.line_num + 1
    rows: Iterator[list[str]] = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as e:
            reading.problem(start, f"not a CSV row ({e}); the rest of the file is not read")
            return
        if any(cell.strip() for cell in row):
            if reading.full(start):
                return
            _keep(_csv_record(row, columns, start, reading), reading)
        start = reader.line_num + 1


def _csv_record(row: Sequence[str], columns: dict[str, int], line: int, reading: _Reading) -> LibraryRecord:
    def cell(name: str) -> str:
        i = columns.get(name)
        return row[i][:MAX_VALUE].strip() if i is not None and i < len(row) else ""

    found = None
    for name in ("doi", "url", "extra", "archive location", "publication title", "notes"):
        found = find_arxiv_id(cell(name))
        if found:
            break
    authors = tuple(_person(a) for a in cell("author").split(";") if a.strip())[:500]
    return LibraryRecord(
        line=line,
        key=cell("key"),
        title=_clean(cell("title")),
        abstract=_clean(cell("abstract note")),
        authors=authors,
        arxiv_id=found,
        doi=_doi(cell("doi")),
    )


# -- fields ------------------------------------------------------------------------------

_ARXIV_IN_TEXT = re.compile(
    r"(?:arxiv\.org/(?:abs|pdf)/|10\.48550/arxiv\.|arxiv[:\s]\s*)"
    r"(\d{4}\.\d{4,5}|[a-z]+(?:-[a-z]+)*(?:\.[A-Za-z]{2})?/\d{7})(?:v\d+)?",
    re.IGNORECASE,
)


def find_arxiv_id(text: str) -> str | None:
    """An arXiv id *text* names (a URL, the arXiv DOI, "arXiv:2402.15627"), checked with :func:`arxiv_id`."""
    for m in _ARXIV_IN_TEXT.finditer(text[:MAX_VALUE]):
        found = arxiv_id(m.group(1))
        if found:
            return found
    return None


def _doi(value: str) -> str | None:
    value = value.strip().lower()
    for prefix in ("https://doi.org/", "http://doi.org/", "https://dx.doi.org/", "http://dx.doi.org/", "doi:"):
        value = value.removeprefix(prefix)
    return value.split()[0][:200] if value.startswith("10.") else None


_ACCENTS = {"'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "~": "\u0303", "=": "\u0304", ".": "\u0307"}
_LETTER_ACCENTS = {"c": "\u0327", "u": "\u0306", "v": "\u030c", "H": "\u030b", "k": "\u0328", "r": "\u030a"}
_SYMBOLS = {"ss": "ß", "o": "ø", "O": "Ø", "ae": "æ", "AE": "Æ", "oe": "œ", "l": "ł", "L": "Ł", "i": "ı", "aa": "å"}
_ACCENT = re.compile(r"\\([`'^\"~=.])\s*\{?\s*(\\?[A-Za-z])\s*\}?")
_LETTER_ACCENT = re.compile(r"\\([cuvHkr])(?:\s+|\s*\{\s*)([A-Za-z])\}?")
_SYMBOL = re.compile(r"\\(ss|ae|AE|oe|aa|[oOlLi])(?![A-Za-z])\s*(?:\{\})?")
_ESCAPED = re.compile(r"\\([&%$#_{}])")
_COMMAND = re.compile(r"\\[A-Za-z]+\*?\s*")
_SPACES = re.compile(r"\s+")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\u200b-\u200f\u2028-\u202e\ufeff]")
"""Control, zero-width, bidi-override characters and lone surrogates: never part of a title."""


def latex_to_text(value: str) -> str:
    """A BibTeX value as plain text: accents composed, braces and commands dropped (good enough to embed)."""
    value = _ACCENT.sub(lambda m: m.group(2).lstrip("\\") + _ACCENTS[m.group(1)], value)
    value = _LETTER_ACCENT.sub(lambda m: m.group(2) + _LETTER_ACCENTS[m.group(1)], value)
    value = _SYMBOL.sub(lambda m: _SYMBOLS[m.group(1)], value)
    value = _ESCAPED.sub(lambda m: m.group(1), value)
    value = _COMMAND.sub("", value).replace("{", "").replace("}", "").replace("~", " ").replace("$", "")
    value = value.replace("---", "\u2014").replace("--", "\u2013")
    return _clean(value)


def _clean(value: str) -> str:
    text = _CONTROL.sub("", unicodedata.normalize("NFC", value))
    return _SPACES.sub(" ", text).strip()[:MAX_VALUE]


def bibtex_authors(value: str) -> tuple[str, ...]:
    """``Vaswani, Ashish and {Google Brain}`` -> ``("Ashish Vaswani", "Google Brain")``: split at top-level "and"."""
    names: list[str] = []
    depth, start = 0, 0
    for m in re.finditer(r"[{}]|\s+and\s+", value):
        token = m.group(0)
        if token == "{":
            depth += 1
        elif token == "}":
            depth = max(0, depth - 1)
        elif depth == 0:
            names.append(value[start : m.start()])
            start = m.end()
    names.append(value[start:])
    return tuple(p for n in names if (p := _person(latex_to_text(n))) and p.lower() != "others")[:500]


def _person(name: str) -> str:
    """``Last, First`` -> ``First Last``; ``Last, Jr, First`` -> ``First Last Jr``."""
    parts = [p.strip() for p in _clean(name).split(",")]
    if len(parts) == 2 and parts[1]:
        return f"{parts[1]} {parts[0]}"[:200]
    if len(parts) == 3 and parts[2]:
        return f"{parts[2]} {parts[0]} {parts[1]}"[:200]
    return " ".join(p for p in parts if p)[:200]


def _keep(record: LibraryRecord, reading: _Reading) -> None:
    if record.title or record.arxiv_id or record.abstract:
        reading.records.append(record)
        return
    what = f"record {record.key!r}" if record.key else "record"
    hint = f" (its DOI {record.doi} cannot be looked up offline)" if record.doi else ""
    reading.problem(record.line, f"{what} has no title, abstract or arXiv id{hint}; add a title")


# -- seeds ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LibrarySeeds:
    seeds: tuple[SeedPaper, ...]
    problems: tuple[NewsletterError, ...]
    """The file's bad records, then the ids arXiv could not give us (each with the file and line)."""


def library_seeds(library: Library, lookup: ArxivLookup | None, *, origin: str | None = None) -> LibrarySeeds:
    """The library's records as seeds, looking up those that have an arXiv id but no abstract.

    Without *lookup* (offline) such a record is a seed from its title alone,
    if it has one.  A failed lookup falls back to the title the same way and
    is reported with the record's line.
    """
    name = origin or library.path.name
    problems: list[NewsletterError] = list(library.problems)
    wanted = [r.arxiv_id for r in library.records if r.arxiv_id and not r.abstract]
    found = lookup.lookup(wanted) if lookup is not None and wanted else {}
    seeds: list[SeedPaper] = []
    for r in library.records:
        where = f"{name} line {r.line}"
        title, summary, authors = r.title, r.abstract, r.authors
        if r.arxiv_id and not r.abstract and r.arxiv_id in found:
            result = found[r.arxiv_id]
            paper = result.paper
            if paper is not None:
                title, summary = title or paper.title, paper.summary
                authors = authors or paper.authors
            else:
                problems.append(LibraryError(library.path, r.line, f"arXiv id {r.arxiv_id}: {result.error}"))
        if not (title or summary):
            if lookup is None:
                problems.append(
                    LibraryError(library.path, r.line, f"arXiv id {r.arxiv_id} has no title here and was not looked up")
                )
            continue
        seeds.append(SeedPaper(title, summary, authors, r.arxiv_id, r.doi, where))
    return LibrarySeeds(tuple(seeds), tuple(problems))
