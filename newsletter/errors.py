"""Every error the project raises on purpose, in one tree.

Foreign exceptions (OSError, tomllib, httpx, TinyDB, sendgrid...) are caught at
the boundary where they happen and re-raised as one of these with
``raise ... from e``, so callers only ever need to know this module.  Each
message says what went wrong *and what to do about it*; the CLI prints it on one
line without a traceback.

    NewsletterError
    ├── ConfigError            newsletter.toml is missing, unreadable or invalid
    ├── ProfileError           one profile file is invalid (file, line, fix)
    │   └── LibraryError       a reader's reference library (papers_from) or one record in it
    ├── SeedError              one seed paper cannot be used
    │   ├── MalformedIdError   the text is not an arXiv id
    │   └── UnknownPaperError  arXiv has no paper with that id
    ├── StoreError             the data folder cannot be used
    │   ├── StoreCorruptError  a database file exists but cannot be read
    │   └── StoreLockedError   another process is writing to the data folder
    ├── SourceError            one source could not be fetched or parsed
    │   ├── FetchError         network, HTTP status, timeout, size cap, SSRF guard
    │   └── ParseError         the bytes are not a feed we understand
    ├── RenderError            a template is missing or broken
    ├── ModelError             the shipped embedding model is missing, corrupt or cannot load
    ├── InternalError          a bug: an unexpected exception in one item's step (traceback logged)
    └── DeliveryError          one email could not be handed over
        ├── PermanentDeliveryError   retrying will not help (bad address, auth)
        │   └── DeliveryAuthError    the backend refused our credentials (401/403)
        ├── TransientDeliveryError   retry later (rate limit, 5xx, refused)
        └── AmbiguousDeliveryError   it may or may not have been sent: never resend
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class NewsletterError(Exception):
    """Base class: catch this to catch everything the project raises on purpose."""


class InternalError(NewsletterError):
    """An unexpected exception in one reader's or one source's step: a bug, kept as a value.

    The batch goes on for the other items; the exception itself is
    ``__cause__`` (and ``original``), and its traceback was logged where it
    was caught, so nothing is flattened into a string.
    """

    def __init__(self, what: str, original: BaseException) -> None:
        self.original = original
        super().__init__(
            f"internal error while {what}: {type(original).__name__}: {original}; "
            "this is a bug, please report it with the log's traceback"
        )
        self.__cause__ = original


class ConfigError(NewsletterError):
    """The configuration file is missing, unreadable or invalid."""


class ProfileError(NewsletterError):
    """A profile file is invalid; carries the file and each problem's line so editors can jump there.

    ``str()`` is one line per problem (``path line N: what is wrong; how to fix it``).
    """

    def __init__(
        self, path: Path | str, line: int | None, message: str, *, problems: Sequence[tuple[int | None, str]] = ()
    ) -> None:
        self.path = Path(path)
        self.problems: tuple[tuple[int | None, str], ...] = tuple(problems) or ((line, message),)
        self.line = line if line is not None else next((n for n, _ in self.problems if n), None)
        """The first offending line, for editors; None when it cannot be known."""
        self.detail = "; ".join(m for _, m in self.problems)
        super().__init__("\n".join(f"{self.path}" + (f" line {n}" if n else "") + f": {m}" for n, m in self.problems))


class LibraryError(ProfileError):
    """A reader's reference library (``papers_from``) cannot be read, or one record in it is bad.

    Like :class:`ProfileError` it names the file (the library) and the line of the record.
    """


class SeedError(NewsletterError):
    """One seed paper cannot be used; the reader's other seeds still count."""


class MalformedIdError(SeedError):
    """The text is not an arXiv id (``2402.15627`` or ``hep-th/9901001``)."""


class UnknownPaperError(SeedError):
    """arXiv answered that it has no paper with this id."""


class StoreError(NewsletterError):
    """The data folder or one of its files cannot be used."""


class StoreCorruptError(StoreError):
    """A database file exists but cannot be read; it is never silently reset."""


class StateLostError(StoreError):
    """The ledger or the signing key of a site that ran before is gone: never recreated silently."""


class StoreLockedError(StoreError):
    """Another process holds the data folder's write lock."""


class SourceError(NewsletterError):
    """One source failed; the run goes on with the others."""


class FetchError(SourceError):
    """The source could not be downloaded."""


class ParseError(SourceError):
    """The downloaded bytes are not a feed we understand."""


class RenderError(NewsletterError):
    """A template is missing or cannot be rendered."""


class ModelError(NewsletterError):
    """The semantic model shipped in the package cannot be used; ranking falls back to the lexical model."""


class DeliveryError(NewsletterError):
    """One email could not be handed to the mail backend."""

    retry_later = False
    """Whether the ledger frees the period for the next run (the kind decides, not the caller)."""


class PermanentDeliveryError(DeliveryError):
    """Retrying will not help: bad address, bad credentials, message rejected."""


class DeliveryAuthError(PermanentDeliveryError):
    """The backend refused our credentials; after several in a row the run stops.

    Nothing is wrong with the reader's digest: once the operator fixes the key
    it must still go out, so the period is freed for the next run.
    """

    retry_later = True


class TransientDeliveryError(DeliveryError):
    """Worth retrying later: rate limit, server error, connection refused."""

    retry_later = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AmbiguousDeliveryError(DeliveryError):
    """The request went out but no answer came back: it may have been sent.

    Such a send is recorded as *uncertain* and never retried automatically,
    because SendGrid has no idempotency key and a retry could be a second email.
    """
