"""``newsletter.toml`` into frozen settings.

Every mistake in the file is reported at once, each with its line, the key and
what is allowed.  Secrets never live in the file: they come from the
environment (``SENDGRID_API_KEY``, ``NEWSLETTER_SECRET``, ``SMTP_PASSWORD``).
Without a config file the embedded defaults apply: the bundled sample feeds,
a TinyDB file in ``./newsletter-data`` and the outbox mail backend, so the
tool works with no keys and no network.
"""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import email_validator
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import _toml
from .errors import ConfigError

DEFAULT_CONFIG = "newsletter.toml"
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
"""A 24-hour time as profiles and the schedule write it."""
_URL_SAFE = re.compile(r"[!-~]+")  # printable ASCII, no spaces or control characters


def email_address(value: str) -> str:
    """*value* as a normalised email address, or ValueError saying what to write."""
    try:
        return email_validator.validate_email(value, check_deliverability=False).normalized
    except email_validator.EmailNotValidError as e:
        raise ValueError(f'{value!r} is not a valid email address ({e}); use e.g. "ada@example.org"') from e


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceSettings(_Section):
    """One configured source: a URL to fetch or a local file to read."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["arxiv", "hf", "feed"] = "feed"
    url: str | None = None
    path: Path | None = None
    allow_private: bool = False
    """Operator sources may point at a private host (an intranet feed)."""
    min_interval: float | None = Field(default=None, ge=0)
    """Seconds between requests to this source's host (arXiv: 3)."""

    @model_validator(mode="after")
    def _one_location(self) -> SourceSettings:
        if (self.url is None) == (self.path is None):
            raise ValueError(f"source `{self.name}` needs exactly one of `url` or `path`")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"source `{self.name}`: url must start with http:// or https://")
        return self


class PathSettings(_Section):
    data_dir: Path = Path("newsletter-data")
    profiles_dir: Path = Path("profiles")
    outbox_dir: Path = Path("outbox")
    feeds_dir: Path = Path("feeds")
    templates_dir: Path | None = None
    """Your own templates; any file here overrides the default of that name."""


class DeliverySettings(_Section):
    backend: Literal["outbox", "smtp", "sendgrid"] = "outbox"
    from_address: str = "digest@example.org"
    from_name: str = "newsletter"
    reply_to: str | None = None
    unsubscribe_mailto: str | None = None
    """An address you read by hand, advertised in List-Unsubscribe next to the
    HTTPS link (e.g. when running without `serve`). Off by default: nothing here
    reads a mailbox, so it is only offered when someone will act on it."""
    concurrency: int = Field(default=8, ge=1, le=256)
    timeout: float = Field(default=30.0, gt=0)
    sendgrid_host: str = "https://api.sendgrid.com"
    sendgrid_sandbox: bool = False
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    retries: int = Field(default=3, ge=0, le=10)
    """Retries of one send on 429, 5xx or a refused connection, within a run."""
    backoff: float = Field(default=1.0, ge=0)
    """First wait in seconds before a retry; doubles each time."""
    max_wait: float = Field(default=120.0, ge=0)
    """Longest wait for a rate limit (429) to reset before giving up for this run."""
    auth_failure_limit: int = Field(default=5, ge=1)
    """Stop the run after this many credential refusals (401/403) in a row."""

    @field_validator("from_address", "reply_to", "unsubscribe_mailto")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return None if value is None else email_address(value)


class SiteSettings(_Section):
    base_url: str = "http://localhost:8080"
    """Public address of `newsletter serve`, for feed and unsubscribe links."""
    title: str = "newsletter"
    contact: str = "operator@example.org"
    """Named in the User-Agent and in every email footer."""
    subscribe: bool = False
    """Let anyone join at `/subscribe` (address and a few interests, confirmed by email: double opt-in)."""

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or not _URL_SAFE.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a web address: use https://host[:port][/path] (http:// for local testing)"
            )
        return value.rstrip("/")


class FetchSettings(_Section):
    timeout: float = Field(default=20.0, gt=0)
    deadline: float = Field(default=60.0, gt=0)
    """Wall-clock limit per source, however slowly the server drips bytes."""
    max_bytes: int = Field(default=20_000_000, gt=0)
    retries: int = Field(default=3, ge=0, le=10)
    retention_days: int = Field(default=30, ge=1)
    concurrency: int = Field(default=4, ge=1, le=64)
    connect_timeout: float = Field(default=10.0, gt=0)
    backoff: float = Field(default=1.0, ge=0)
    """First retry after this many seconds, doubling each time (unless the server sends Retry-After)."""
    max_retry_after: float = Field(default=60.0, ge=0)
    """Longest Retry-After we wait for; a longer one fails the source until the next run."""
    max_redirects: int = Field(default=5, ge=0, le=20)
    host_intervals: dict[str, float] = Field(default_factory=dict)
    """Seconds between requests per host (and its subdomains); arXiv hosts get 3 unless set here."""
    arxiv_api: str = "https://export.arxiv.org"
    """Where seed papers that no source lists are looked up (the arXiv API; settable for tests and mirrors)."""
    arxiv_api_allow_private: bool = False
    """Let the lookup reach a private or loopback `arxiv_api` host (a mirror of your own, a test server)."""
    catchup_days: int = Field(default=7, ge=0, le=60)
    """Date-addressed sources (Hugging Face): how many missed days to fetch after downtime."""

    @field_validator("host_intervals")
    @classmethod
    def _intervals(cls, value: dict[str, float]) -> dict[str, float]:
        bad = sorted(k for k, v in value.items() if v < 0 or not k.strip("."))
        if bad:
            raise ValueError(f"host intervals must be a host name and seconds >= 0; check {', '.join(bad)}")
        return {k.lower().strip("."): float(v) for k, v in value.items()}


class ScheduleSettings(_Section):
    fetch_at: str = "05:30"
    """UTC time of the daily fetch: arXiv's feeds update at midnight US Eastern
    (05:00 UTC in winter, 04:00 in summer), so 05:30 gets the new listing."""

    @field_validator("fetch_at")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not HHMM.match(value):
            raise ValueError(f'{value!r} is not a time: use HH:MM, e.g. "05:30"')
        return value


class FeedSettings(_Section):
    items: int = Field(default=50, ge=1, le=1000)
    """How many recent matches each reader's RSS/Atom feed keeps."""


class RankingSettings(_Section):
    semantic: bool = True
    """Fuse the shipped sentence-embedding model (all-MiniLM-L6-v2, offline) with the word-based ranking.

    Each new paper is embedded once, at fetch time (about a minute of CPU for
    a 2,000-paper day on two cores).  Off: words, authors and categories only."""
    embed_batch: int = Field(default=5000, ge=1)
    """At most this many papers are embedded per fetch (the newest first); the rest at the next fetch."""


class Settings(_Section):
    """Everything the app needs; paths are absolute once loaded."""

    paths: PathSettings = PathSettings()
    sources: tuple[SourceSettings, ...] = ()
    delivery: DeliverySettings = DeliverySettings()
    site: SiteSettings = SiteSettings()
    fetch: FetchSettings = FetchSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    feed: FeedSettings = FeedSettings()
    ranking: RankingSettings = RankingSettings()

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, value: tuple[SourceSettings, ...]) -> tuple[SourceSettings, ...]:
        names = [s.name for s in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique; repeated: {', '.join(dupes)}")
        return value

    def resolved(self, base: Path) -> Settings:
        """A copy with every relative path made absolute against *base*."""

        def fix(p: Path) -> Path:
            return p if p.is_absolute() else (base / p).resolve()

        paths = self.paths.model_copy(
            update={
                "data_dir": fix(self.paths.data_dir),
                "profiles_dir": fix(self.paths.profiles_dir),
                "outbox_dir": fix(self.paths.outbox_dir),
                "feeds_dir": fix(self.paths.feeds_dir),
                "templates_dir": fix(self.paths.templates_dir) if self.paths.templates_dir else None,
            }
        )
        sources = tuple(s.model_copy(update={"path": fix(s.path)}) if s.path is not None else s for s in self.sources)
        return self.model_copy(update={"paths": paths, "sources": sources})


def sample_sources() -> tuple[SourceSettings, ...]:
    """The bundled sample feeds: an arXiv listing and a Hugging Face daily list."""
    samples = Path(str(resources.files("newsletter") / "samples"))
    return (
        SourceSettings(name="arxiv-sample", kind="arxiv", path=samples / "arxiv_cs.rss"),
        SourceSettings(name="hf-sample", kind="hf", path=samples / "hf_daily_papers.json"),
    )


def default_settings(base: Path) -> Settings:
    """The embedded defaults: bundled samples, outbox backend, paths under *base*."""
    return Settings(sources=sample_sources()).resolved(base)


def load_settings(path: Path | None = None, *, base: Path | None = None) -> Settings:
    """Load *path*, or the embedded defaults when no config file exists.

    An explicitly named file that does not exist is an error; the default
    ``./newsletter.toml`` being absent is not.
    """
    explicit = path is not None
    path = path or Path(DEFAULT_CONFIG)
    if not path.exists():
        if explicit:
            raise ConfigError(f"{path}: no such config file; create one with `newsletter init`")
        return default_settings(base or Path.cwd())
    try:
        data, text = _toml.read(path)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror}); check the file's permissions") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from e
    except _toml.TomlSyntaxError as e:
        where = f" line {e.line}" if e.line else ""
        raise ConfigError(f"{path}{where}: not valid TOML: {e.message}") from e
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        problems = _toml.explain(e, Settings, text)
        lines = [f"{path}" + (f" line {line}" if line else "") + f": {msg}" for line, msg in problems]
        raise ConfigError("; ".join(lines) if len(lines) == 1 else f"{len(lines)} problems: " + "; ".join(lines)) from e
    return settings.resolved(path.resolve().parent)


def secret(name: str) -> str | None:
    """A secret from the environment; empty counts as unset."""
    return os.environ.get(name) or None
