"""A fixed digest built from the bundled sample papers, for render tests and goldens.

Deterministic: the same call always gives the same digest, so golden files
stay stable.  Lives here (not in conftest.py) so the render tests and the
benchmark smoke test can share it.  The papers come from the render
benchmark's ``sample_entries`` (benchmarks/ is on the test path), so the two
never drift apart.
"""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

from bench_render import NOW, sample_entries

from newsletter.types import Digest, Entry, Interests, Keyword, Match, Profile, ReaderLinks, Reason, ReasonKind

__all__ = ["DAY", "LINKS", "NOW", "match_for", "profile", "sample_digest", "sample_entries"]

DAY = date(2026, 11, 23)
LINKS = ReaderLinks(
    feed_url="https://news.example.org/feeds/tok-feed.xml",
    atom_url="https://news.example.org/feeds/tok-feed.atom",
    unsubscribe_url="https://news.example.org/unsubscribe/tok-unsub",
    pause_url="https://news.example.org/pause/tok-unsub",
    profile_url="https://news.example.org/profiles/ada",
)


def profile(**changes: object) -> Profile:
    base = Profile(
        id="ada",
        email="ada@example.org",
        name="Ada",
        timezone="Europe/Berlin",
        send_at=time(7, 30),
        frequency="daily",
        interests=Interests(
            keywords=(Keyword("quantization"), Keyword("FP8 training")),
            authors=("Tri Dao",),
            categories=("cs.LG",),
        ),
        path=Path("ada.toml"),
    )
    from dataclasses import replace

    return replace(base, **changes)  # type: ignore[arg-type]


def match_for(entry: Entry, i: int = 0) -> Match:
    reasons = [Reason(ReasonKind.KEYWORD, '"quantization" in title', "quantization", "title")]
    if i % 2:
        reasons.append(Reason(ReasonKind.KEYWORD, '"FP8 training" in abstract', "FP8 training", "abstract"))
    if i % 4 == 2:
        reasons.append(Reason(ReasonKind.AUTHOR, "by T. Dao (you follow Tri Dao)", "Tri Dao", detail="T. Dao"))
    if i % 5 == 0:
        reasons.append(Reason(ReasonKind.CATEGORY, "in cs.LG", "cs.LG"))
    if (entry.upvotes or 0) >= 20 and i % 3 == 0:
        said = f"popular on Hugging Face ({entry.upvotes} upvotes)"
        reasons.append(Reason(ReasonKind.POPULAR, said, detail=str(entry.upvotes)))
    return Match(entry=entry, score=10.0 - i * 0.1, reasons=tuple(reasons))


def sample_digest(n: int = 10, prof: Profile | None = None) -> Digest:
    matches = tuple(match_for(e, i) for i, e in enumerate(sample_entries(n)))
    return Digest(
        profile=prof or profile(),
        period=DAY.isoformat(),
        day=DAY,
        matches=matches,
        generated_at=NOW,
    )
