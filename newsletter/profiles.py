"""Profile files: one TOML file per reader, checked, and the only thing a reader edits.

A broken file never stops the others: :func:`load_profiles` returns the valid
profiles *and* one :class:`~newsletter.errors.ProfileError` per broken file,
each naming the file, the line and the fix.  The format is a pydantic model, so
the JSON Schema that ships with the package (``newsletter schema``) can never
drift from what the validator accepts.
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import tomlkit
import tomlkit.exceptions
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import _toml
from .config import HHMM, email_address
from .errors import ProfileError
from .files import FileTooLarge, NotRegularFile, read_regular
from .types import Feedback, Interests, Keyword, Profile

ARXIV_ID = re.compile(r"^(?:arxiv:)?(\d{4}\.\d{4,5}|[a-z-]+(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?$", re.IGNORECASE)
_READER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class WeightedKeyword(_Strict):
    """A keyword or phrase with its own weight (default 1)."""

    text: str = Field(min_length=1, max_length=200)
    weight: float = Field(default=1.0, gt=0, le=10)


NonEmpty = Annotated[str, Field(min_length=1, max_length=200)]

MAX_FILE_BYTES = 256 * 1024
"""A profile file larger than this is refused unread: a real one is a few hundred bytes."""
MAX_KEYWORDS = 200
MAX_AUTHORS = 200
MAX_CATEGORIES = 50
MAX_PAPERS = 500
"""Caps per list: far beyond what a reader writes by hand, small enough that one file cannot exhaust the host."""
_CATEGORY = re.compile(r"^[a-z-]+(\.[A-Za-z-]+)?$")
_FREQUENCY = re.compile(r"^(daily|weekly:(mon|tue|wed|thu|fri|sat|sun))$")
EXAMPLES = {
    "email": 'email = "ada@example.org"',
    "name": 'name = "Ada"',
    "timezone": 'timezone = "Europe/Berlin"',
    "send_at": 'send_at = "07:30"',
    "frequency": 'frequency = "daily"',
    "max_items": "max_items = 15",
    "min_score": "min_score = 0.5",
    "skip_empty": "skip_empty = true",
    "paused": "paused = false",
    "paused_until": "paused_until = 2026-12-08",
    "trending": "trending = 5",
    "calibrate": "calibrate = true",
    "layout": 'layout = "compact"',
    "interests": '[interests] with keywords = ["mixture of experts"] below it',
    "keywords": 'keywords = ["mixture of experts", { text = "FP8 training", weight = 2 }]',
    "exclude": 'exclude = ["medical imaging"]',
    "authors": 'authors = ["Tri Dao"]',
    "categories": 'categories = ["cs.LG"]',
    "papers": 'papers = ["2402.15627"]',
    "papers_from": 'papers_from = "library.bib"',
    "text": 'text = "FP8 training"',
    "weight": "weight = 2",
}
"""A right way to write each key, shown in the error when it is written wrong."""


class InterestsFile(_Strict):
    """What the reader wants; at least one list must be non-empty."""

    keywords: list[NonEmpty | WeightedKeyword] = Field(
        default_factory=list,
        max_length=MAX_KEYWORDS,
        description='Words or phrases, e.g. "FP8 training", or {text = "...", weight = 2}.',
    )
    exclude: list[NonEmpty] = Field(
        default_factory=list, max_length=MAX_KEYWORDS, description="A paper mentioning any of these is never sent."
    )
    authors: list[NonEmpty] = Field(
        default_factory=list, max_length=MAX_AUTHORS, description='e.g. "Tri Dao"; "T. Dao" and "Dao, Tri" match too.'
    )
    categories: list[Annotated[str, Field(json_schema_extra={"pattern": _CATEGORY.pattern})]] = Field(
        default_factory=list, max_length=MAX_CATEGORIES, description='arXiv categories, e.g. "cs.LG".'
    )
    papers: list[str] = Field(
        default_factory=list, max_length=MAX_PAPERS, description='Seed papers by arXiv id: "more like these".'
    )
    papers_from: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Seed from your reference library: a BibTeX (.bib), RIS (.ris) or Zotero CSV export, "
        'next to this file, e.g. "library.bib".',
    )

    @field_validator("papers_from")
    @classmethod
    def _library_path(cls, value: str | None) -> str | None:
        if value is not None and (Path(value).is_absolute() or ".." in Path(value).parts or "\0" in value):
            raise ValueError(
                f"{value!r} must be a file in the profiles folder, named relative to this file, "
                'e.g. papers_from = "library.bib"'
            )
        return value

    @field_validator("categories")
    @classmethod
    def _categories(cls, value: list[str]) -> list[str]:
        for item in value:
            if not _CATEGORY.match(item):
                archive, dot, rest = item.partition(".")
                fixed = archive.lower() + dot + (rest.upper() if archive.lower() == "cs" and len(rest) == 2 else rest)
                hint = f'; did you mean "{fixed}"?' if _CATEGORY.match(fixed) else ""
                raise ValueError(
                    f"{item!r} is not an arXiv category: the archive is lower case, then a dot and the subject "
                    f'class, e.g. "cs.CL" or "stat.ML"{hint}'
                )
        return value

    @field_validator("papers")
    @classmethod
    def _arxiv_ids(cls, value: list[str]) -> list[str]:
        for item in value:
            if not ARXIV_ID.match(item.strip()):
                raise ValueError(f'{item!r} is not an arXiv id; use the form "2402.15627"')
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> InterestsFile:
        if not (self.keywords or self.authors or self.categories or self.papers or self.papers_from):
            raise ValueError(
                "interests are empty: add at least one of keywords, authors, categories, papers or papers_from, "
                'e.g. keywords = ["mixture of experts"]'
            )
        return self


MAX_RATINGS = 500
"""Ratings kept per list; the oldest go first."""
_ENTRY_ID = re.compile(
    r"^(?:arxiv:)?(?:\d{4}\.\d{4,5}|[a-z-]+(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?$|^(?:doi|title):\S+$", re.I
)


class FeedbackFile(_Strict):
    """Ratings written by the "more like this" / "less like this" links; the reader may edit them."""

    liked: list[str] = Field(
        default_factory=list, max_length=MAX_RATINGS, description='Papers rated "more like this" (arXiv ids).'
    )
    disliked: list[str] = Field(
        default_factory=list, max_length=MAX_RATINGS, description='Papers rated "less like this" (arXiv ids).'
    )
    calibrate: bool = Field(
        default=False,
        description='Add one "to calibrate" paper to each digest: the one your ratings say least about.',
    )

    @field_validator("liked", "disliked")
    @classmethod
    def _ids(cls, value: list[str]) -> list[str]:
        for item in value:
            if not _ENTRY_ID.match(item.strip()):
                raise ValueError(f'{item!r} is not a paper id; use an arXiv id like "2402.15627"')
        return value


class ProfileFile(_Strict):
    """One reader's profile file (TOML)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, title="newsletter reader profile")

    email: str = Field(max_length=254, description="Where the digest goes.")
    name: str | None = Field(
        default=None, max_length=100, description="How the email greets you; defaults to the file name."
    )
    timezone: str = Field(default="UTC", description='IANA time zone, e.g. "Europe/Berlin".')
    send_at: str = Field(default="07:00", description="Local time of the digest, HH:MM.")
    frequency: str = Field(
        default="daily",
        json_schema_extra={"pattern": _FREQUENCY.pattern},
        description='"daily" or "weekly:mon" (any day).',
    )
    max_items: int = Field(default=15, ge=1, le=100, description="At most this many papers per digest.")
    min_score: float = Field(default=0.0, ge=0, description="Leave out papers scoring below this.")
    skip_empty: bool = Field(default=True, description="No email on days with nothing relevant.")
    paused: bool = Field(default=False, description="Set by one-click unsubscribe; set false to resume.")
    paused_until: date | None = Field(
        default=None, description='No digest before this date, e.g. 2026-12-08 (set by "pause for a week").'
    )
    trending: int = Field(
        default=0, ge=0, le=20, description="Also show this many of the day's most upvoted Hugging Face papers."
    )
    layout: Literal["full", "compact"] = Field(
        default="full", description='"compact": titles and reasons with short abstracts, for long digests.'
    )
    interests: InterestsFile
    feedback: FeedbackFile = Field(default_factory=FeedbackFile)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return email_address(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        if value not in _zones():
            raise ValueError(f"unknown time zone {value!r}{_zone_hint(value)}")
        return value

    @field_validator("frequency")
    @classmethod
    def _frequency(cls, value: str) -> str:
        if not _FREQUENCY.match(value):
            low = value.strip().lower()
            day = low.partition(":")[2][:3]
            hint = f'; did you mean "weekly:{day}"?' if low.startswith("weekly") and day in _WEEKDAYS else ""
            raise ValueError(
                f'{value!r} is not a frequency: use "daily", or "weekly:DAY" with DAY one of '
                f'{", ".join(_WEEKDAYS)}, e.g. "weekly:mon"{hint}'
            )
        return value

    @field_validator("send_at")
    @classmethod
    def _send_at(cls, value: str) -> str:
        if not HHMM.match(value):
            raise ValueError(f'{value!r} is not a time: use HH:MM on a 24-hour clock, e.g. "07:30"')
        return value


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ABBREVIATIONS = {
    "BST": "Europe/London",
    "GMT": "Europe/London",
    "WET": "Europe/Lisbon",
    "CET": "Europe/Berlin",
    "CEST": "Europe/Berlin",
    "EET": "Europe/Athens",
    "MSK": "Europe/Moscow",
    "EST": "America/New_York",
    "EDT": "America/New_York",
    "CST": "America/Chicago",
    "CDT": "America/Chicago",
    "MST": "America/Denver",
    "MDT": "America/Denver",
    "PST": "America/Los_Angeles",
    "PDT": "America/Los_Angeles",
    "IST": "Asia/Kolkata",
    "JST": "Asia/Tokyo",
    "KST": "Asia/Seoul",
    "AEST": "Australia/Sydney",
    "AEDT": "Australia/Sydney",
    "NZST": "Pacific/Auckland",
}
"""Zone abbreviations people write, and the IANA zone most of them mean (an abbreviation is no zone: no DST rules)."""


def _zone_hint(value: str) -> str:
    """A fix for an unknown time zone: the IANA name an abbreviation usually means, or a close spelling."""
    meant = _ABBREVIATIONS.get(value.strip().upper())
    if meant:
        return f'; {value} is an abbreviation, not a zone: write the place, e.g. "{meant}"'
    named = [z for z in _zones() if "/" in z]
    close = _toml.did_you_mean(value, named).replace("`", '"')
    return close or '; use an IANA name like "Europe/Berlin" (a continent/city pair)'


def schema() -> dict[str, Any]:
    """The JSON Schema of a profile file, for editors and ``newsletter schema``."""
    out = ProfileFile.model_json_schema()
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return out


def canonical_arxiv_id(value: str) -> str | None:
    m = ARXIV_ID.match(value.strip())
    return m.group(1) if m else None


def parse_profile(text: str, path: Path) -> Profile:
    """Validate one profile file's *text*; raises ProfileError naming the line."""
    reader = path.stem
    if not _READER_ID.match(reader):
        raise ProfileError(path, None, "rename the file to letters, digits, '-', '_' or '.' (it is the reader's id)")
    try:
        data = _toml.loads(text)
    except _toml.TomlSyntaxError as e:
        raise ProfileError(path, e.line, f"not valid TOML: {e.message}") from e
    try:
        model = ProfileFile.model_validate(data)
    except ValidationError as e:
        problems = _toml.explain(e, ProfileFile, text, EXAMPLES, data)
        first_line = next((line for line, _ in problems if line), None)
        raise ProfileError(path, first_line, problems[0][1], problems=problems) from e
    except RecursionError as e:  # pydantic on a pathological structure the TOML parser let through
        raise ProfileError(path, None, "the file is nested far too deeply; see `newsletter schema`") from e
    return _to_profile(model, reader, path)


def _to_profile(m: ProfileFile, reader: str, path: Path) -> Profile:
    h, mnt = (int(x) for x in m.send_at.split(":"))
    keywords = tuple(Keyword(k, 1.0) if isinstance(k, str) else Keyword(k.text, k.weight) for k in m.interests.keywords)
    papers = tuple(dict.fromkeys(canonical_arxiv_id(p) or p for p in m.interests.papers))
    return Profile(
        id=reader,
        email=m.email,
        name=m.name or reader,
        timezone=m.timezone,
        send_at=time(h, mnt),
        frequency=m.frequency,
        interests=Interests(
            keywords=keywords,
            exclude=tuple(m.interests.exclude),
            authors=tuple(m.interests.authors),
            categories=tuple(m.interests.categories),
            papers=papers,
            papers_from=path.parent / m.interests.papers_from if m.interests.papers_from else None,
        ),
        max_items=m.max_items,
        min_score=m.min_score,
        skip_empty=m.skip_empty,
        paused=m.paused,
        paused_until=m.paused_until,
        trending=m.trending,
        calibrate=m.feedback.calibrate,
        layout=m.layout,
        path=path,
        feedback=Feedback(
            liked=tuple(dict.fromkeys(_entry_id(i) for i in m.feedback.liked)),
            disliked=tuple(dict.fromkeys(_entry_id(i) for i in m.feedback.disliked)),
        ),
    )


def _entry_id(value: str) -> str:
    """A rated paper's id as the store keys it: ``arxiv:2402.15627`` for an arXiv id, else as written."""
    arxiv = canonical_arxiv_id(value)
    return f"arxiv:{arxiv}" if arxiv else value.strip()


def _file_id(entry_id: str) -> str:
    """How a rating is written in the file: the bare arXiv id where there is one (what people copy)."""
    return entry_id.removeprefix("arxiv:")


@dataclass(frozen=True, slots=True)
class LoadResult:
    profiles: tuple[Profile, ...]
    errors: tuple[ProfileError, ...]
    stats: dict[Path, tuple[int, int]] = field(default_factory=dict)
    """Each valid file's ``(mtime_ns, size)``, taken before it was read (see ``cached``)."""


def read_profile_text(path: Path, folder: Path | None = None) -> tuple[str, datetime]:
    """A profile file's text and modification time, read defensively.

    Only a regular file is read (a FIFO would hang, ``/dev/zero`` never
    ends), a symlink only if it stays inside *folder*, and at most
    :data:`MAX_FILE_BYTES`.  Raises :class:`ProfileError` naming the file.
    """
    try:
        if folder is not None and path.is_symlink():
            target = path.resolve()
            if not target.is_relative_to(folder.resolve()):
                raise ProfileError(path, None, f"is a link to {target}, outside the profiles folder; copy the file in")
        raw, st = read_regular(path, MAX_FILE_BYTES)
    except NotRegularFile as e:
        why = "is not a regular file (a pipe, device or folder); replace it with a file"
        raise ProfileError(path, None, why) from e
    except FileTooLarge as e:
        why = f"is {e.size_said}; a profile may be at most {MAX_FILE_BYTES:,} bytes: shorten it"
        raise ProfileError(path, None, why) from e
    except OSError as e:
        raise ProfileError(path, None, f"cannot read the file ({e.strerror or e}); check its permissions") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ProfileError(path, line, f"is not UTF-8 text ({e.reason}); save it as UTF-8") from e
    return text, datetime.fromtimestamp(st.st_mtime, UTC)


def load_profile(path: Path, folder: Path | None = None) -> Profile:
    """One profile file, read with :func:`read_profile_text` and validated; raises :class:`ProfileError`."""
    text, mtime = read_profile_text(path, folder)
    return replace(parse_profile(text, path), mtime=mtime)


def reader_key(email: str) -> str:
    """Who a reader is: their address, case-insensitively (renaming the file keeps their history)."""
    return email.strip().lower()


Cached = Callable[[Path, int, int], Profile | None]
"""``cached(path, mtime_ns, size)``: the profile loaded from that file when it had that mtime and size."""


def load_profiles(folder: Path, cached: Cached | None = None) -> LoadResult:
    """Every ``*.toml`` in *folder*, valid ones and errors side by side.

    With *cached* (the store's profile cache) an unchanged file is not read
    again: a tick over 100,000 readers costs one ``stat`` per file.  Two
    files with one address (case-insensitively) are both refused, each error
    naming the other file: which one is the reader is for the operator to say.
    """
    profiles: list[Profile] = []
    errors: list[ProfileError] = []
    if not folder.is_dir():
        return LoadResult(
            (), (ProfileError(folder, None, "no such profiles folder; create it or fix `paths.profiles_dir`"),)
        )
    by_address: dict[str, list[Profile]] = {}
    stats: dict[Path, tuple[int, int]] = {}
    for path in sorted(folder.glob("*.toml")):
        try:
            st = path.lstat() if path.is_symlink() else path.stat()  # before reading: a change re-reads next tick
            stat_key = (st.st_mtime_ns, st.st_size)
            profile = cached(path, *stat_key) if cached is not None and not path.is_symlink() else None
            if profile is None:
                profile = load_profile(path, folder)
        except ProfileError as e:
            errors.append(e)
            continue
        except OSError as e:
            errors.append(ProfileError(path, None, f"cannot read the file ({e.strerror or e}); check its permissions"))
            continue
        except RecursionError:
            errors.append(ProfileError(path, None, "the file is nested far too deeply; see `newsletter schema`"))
            continue
        by_address.setdefault(reader_key(profile.email), []).append(profile)
        stats[path] = stat_key
    for same in by_address.values():
        if len(same) == 1:
            profiles.append(same[0])
            continue
        for p in same:
            others = ", ".join(q.path.name for q in same if q is not p and q.path is not None)
            errors.append(
                ProfileError(
                    p.path or folder,
                    None,
                    f"email {p.email} is also used by {others}: one address is one reader; "
                    "delete or change one of the files",
                )
            )
    profiles.sort(key=lambda p: str(p.path))
    errors.sort(key=lambda e: str(e.path))
    return LoadResult(tuple(profiles), tuple(errors), {p.path: stats[p.path] for p in profiles if p.path in stats})


def set_paused(path: Path, paused: bool) -> None:
    """Write ``paused = ...`` into a profile file, keeping its comments and layout."""
    from .files import atomic_write

    try:
        doc = tomlkit.parse(path.read_text(encoding="utf-8"))
        doc["paused"] = paused
        atomic_write(path, tomlkit.dumps(doc).encode("utf-8"))
    except (OSError, UnicodeDecodeError, tomlkit.exceptions.TOMLKitError) as e:
        value = str(paused).lower()
        raise ProfileError(path, None, f"cannot set `paused = {value}` ({e}); edit the file by hand") from e


def set_paused_until(path: Path, until: date) -> None:
    """Write ``paused_until = YYYY-MM-DD`` into a profile file, keeping its comments ("pause for a week")."""
    from .files import atomic_write

    try:
        text, _ = read_profile_text(path)
        doc = tomlkit.parse(text.removeprefix("\ufeff"))
        doc["paused_until"] = until
        atomic_write(path, tomlkit.dumps(doc).encode("utf-8"))
    except (OSError, UnicodeDecodeError, tomlkit.exceptions.TOMLKitError) as e:
        raise ProfileError(path, None, f"cannot set `paused_until = {until}` ({e}); edit the file by hand") from e


FEEDBACK_COMMENT = "written by the links in your digest; edit freely"


def set_rating(path: Path, entry_id: str, choice: str | None) -> Feedback:
    """Write one rating into the profile file's ``[feedback]`` section, keeping comments and edits.

    *choice* is ``"liked"``, ``"disliked"`` or None (take the rating back).
    The paper leaves the other list; each list keeps its newest
    :data:`MAX_RATINGS`.  Returns the feedback as the file now has it.
    """
    from .files import atomic_write

    if choice not in ("liked", "disliked", None):
        raise ValueError(choice)
    try:
        text, _ = read_profile_text(path)
        doc = tomlkit.parse(text.removeprefix("\ufeff"))
        table = doc.get("feedback")
        if table is None:
            table = tomlkit.table()
            table.comment(FEEDBACK_COMMENT)
            doc["feedback"] = table
        written = _file_id(entry_id)
        lists: dict[str, list[str]] = {}
        for name in ("liked", "disliked"):
            current = [str(x) for x in table.get(name, [])]
            keep = [x for x in current if _entry_id(x) != entry_id]
            if name == choice:
                keep = [*keep, written][-MAX_RATINGS:]
            lists[name] = keep
            if keep != current or name not in table:
                array = tomlkit.array()
                array.extend(keep)
                table[name] = array
        atomic_write(path, tomlkit.dumps(doc).encode("utf-8"))
    except (OSError, UnicodeDecodeError, tomlkit.exceptions.TOMLKitError) as e:
        raise ProfileError(path, None, f"cannot write the rating ({e}); add it under [feedback] by hand") from e
    return Feedback(tuple(map(_entry_id, lists["liked"])), tuple(map(_entry_id, lists["disliked"])))


def missing_papers(profile: Profile, known_ids: Sequence[str]) -> list[str]:
    """Seed papers that are not in the store: reported, never silently ignored."""
    known = set(known_ids)
    return [p for p in profile.interests.papers if f"arxiv:{p}" not in known]
