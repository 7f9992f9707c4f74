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
from dataclasses import dataclass, field
from datetime import datetime, time
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import tomlkit
import tomlkit.exceptions
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import _toml
from .config import HHMM, email_address
from .errors import ProfileError
from .types import Interests, Keyword, Profile

ARXIV_ID = re.compile(r"^(?:arxiv:)?(\d{4}\.\d{4,5}|[a-z-]+(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?$", re.IGNORECASE)
_READER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class WeightedKeyword(_Strict):
    """A keyword or phrase with its own weight (default 1)."""

    text: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0, le=10)


NonEmpty = Annotated[str, Field(min_length=1)]


class InterestsFile(_Strict):
    """What the reader wants; at least one list must be non-empty."""

    keywords: list[NonEmpty | WeightedKeyword] = Field(
        default_factory=list, description='Words or phrases, e.g. "FP8 training", or {text = "...", weight = 2}.'
    )
    exclude: list[NonEmpty] = Field(default_factory=list, description="A paper mentioning any of these is never sent.")
    authors: list[NonEmpty] = Field(
        default_factory=list, description='e.g. "Tri Dao"; "T. Dao" and "Dao, Tri" match too.'
    )
    categories: list[Annotated[str, Field(pattern=r"^[a-z-]+(\.[A-Za-z-]+)?$")]] = Field(
        default_factory=list, description='arXiv categories, e.g. "cs.LG".'
    )
    papers: list[str] = Field(default_factory=list, description='Seed papers by arXiv id: "more like these".')

    @field_validator("papers")
    @classmethod
    def _arxiv_ids(cls, value: list[str]) -> list[str]:
        for item in value:
            if not ARXIV_ID.match(item.strip()):
                raise ValueError(f'{item!r} is not an arXiv id; use the form "2402.15627"')
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> InterestsFile:
        if not (self.keywords or self.authors or self.categories or self.papers):
            raise ValueError(
                "interests are empty: add at least one of keywords, authors, categories or papers, "
                'e.g. keywords = ["mixture of experts"]'
            )
        return self


class ProfileFile(_Strict):
    """One reader's profile file (TOML)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True, title="newsletter reader profile")

    email: str = Field(description="Where the digest goes.")
    name: str | None = Field(default=None, description="How the email greets you; defaults to the file name.")
    timezone: str = Field(default="UTC", description='IANA time zone, e.g. "Europe/Berlin".')
    send_at: str = Field(default="07:00", description="Local time of the digest, HH:MM.")
    frequency: str = Field(
        default="daily",
        pattern=r"^(daily|weekly:(mon|tue|wed|thu|fri|sat|sun))$",
        description='"daily" or "weekly:mon" (any day).',
    )
    max_items: int = Field(default=15, ge=1, le=100, description="At most this many papers per digest.")
    min_score: float = Field(default=0.0, ge=0, description="Leave out papers scoring below this.")
    skip_empty: bool = Field(default=True, description="No email on days with nothing relevant.")
    paused: bool = Field(default=False, description="Set by one-click unsubscribe; set false to resume.")
    interests: InterestsFile

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        return email_address(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        if value not in _zones():
            hint = _toml.did_you_mean(value, _zones()).replace("`", '"') or '; use an IANA name like "Europe/Berlin"'
            raise ValueError(f"unknown time zone {value!r}{hint}")
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
        problems = _toml.explain(e, ProfileFile, text)
        first_line = next((line for line, _ in problems if line), None)
        if len(problems) == 1:
            raise ProfileError(path, first_line, problems[0][1]) from e
        message = f"{len(problems)} problems: " + "; ".join(
            (f"line {line}: " if line else "") + msg for line, msg in problems
        )
        raise ProfileError(path, first_line, message, line_in_message=True) from e
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
        ),
        max_items=m.max_items,
        min_score=m.min_score,
        skip_empty=m.skip_empty,
        paused=m.paused,
        path=path,
    )


@dataclass(frozen=True, slots=True)
class LoadResult:
    profiles: tuple[Profile, ...]
    errors: tuple[ProfileError, ...]
    stats: dict[Path, tuple[int, int]] = field(default_factory=dict)
    """Each valid file's ``(mtime_ns, size)``, taken before it was read (see ``cached``)."""


Cached = Callable[[Path, int, int], Profile | None]
"""``cached(path, mtime_ns, size)``: the profile loaded from that file when it had that mtime and size."""


def load_profiles(folder: Path, cached: Cached | None = None) -> LoadResult:
    """Every ``*.toml`` in *folder*, valid ones and errors side by side.

    With *cached* (the store's profile cache) an unchanged file is not read
    again: a tick over 100,000 readers costs one ``stat`` per file.
    """
    profiles: list[Profile] = []
    errors: list[ProfileError] = []
    if not folder.is_dir():
        return LoadResult(
            (), (ProfileError(folder, None, "no such profiles folder; create it or fix `paths.profiles_dir`"),)
        )
    seen: dict[str, Path] = {}
    stats: dict[Path, tuple[int, int]] = {}
    for path in sorted(folder.glob("*.toml")):
        try:
            st = path.stat()  # before reading: a change during the read makes the next tick read it again
            stat = (st.st_mtime_ns, st.st_size)
            profile = cached(path, *stat) if cached is not None else None
            if profile is None:
                profile = parse_profile(path.read_text(encoding="utf-8"), path)
        except ProfileError as e:
            errors.append(e)
            continue
        except (OSError, UnicodeDecodeError) as e:
            errors.append(ProfileError(path, None, f"cannot read the file ({e}); save it as UTF-8 text"))
            continue
        if profile.email in seen:
            errors.append(
                ProfileError(path, None, f"email {profile.email} is already used by {seen[profile.email].name}")
            )
            continue
        seen[profile.email] = path
        profiles.append(profile)
        stats[path] = stat
    return LoadResult(tuple(profiles), tuple(errors), stats)


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


def is_paused(file_paused: bool, file_mtime: datetime | None, unsubscribed_at: datetime | None) -> bool:
    """Whether a reader is paused, from their file and the ledger's unsubscribe record. Pure.

    The file is the source of truth, but a one-click unsubscribe must hold even
    when writing the file failed, or a run read the file just before it
    changed: an unsubscribe counts until the reader edits the file after it
    (to resume, they set ``paused = false``, which makes the file newer).
    """
    if file_paused:
        return True
    if unsubscribed_at is None:
        return False
    return file_mtime is None or unsubscribed_at >= file_mtime


def missing_papers(profile: Profile, known_ids: Sequence[str]) -> list[str]:
    """Seed papers that are not in the store: reported, never silently ignored."""
    known = set(known_ids)
    return [p for p in profile.interests.papers if f"arxiv:{p}" not in known]
