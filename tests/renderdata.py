"""A fixed digest built from the bundled sample papers, for render tests and goldens.

Deterministic: the same call always gives the same digest, so golden files
stay stable.  Lives here (not in conftest.py) so the render tests and the
benchmark smoke test can share it.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from pathlib import Path

from newsletter.render import ReaderLinks
from newsletter.types import Digest, Entry, Interests, Keyword, Match, Profile, Reason, ReasonKind

SAMPLES = Path(str(resources.files("newsletter") / "samples"))
DAY = date(2026, 11, 23)
NOW = datetime(2026, 11, 23, 6, 30, tzinfo=UTC)
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


def sample_entries(n: int) -> list[Entry]:
    """The first *n* papers of the bundled Hugging Face sample, as entries."""
    papers = json.loads((SAMPLES / "hf_daily_papers.json").read_text())
    out = []
    for i, item in enumerate(papers[:n]):
        p = item["paper"]
        out.append(
            Entry(
                id=f"arxiv:{p['id']}",
                title=p["title"],
                summary=p["summary"],
                link=f"https://arxiv.org/abs/{p['id']}",
                first_seen=NOW - timedelta(hours=i),
                authors=tuple(a["name"] for a in p["authors"]),
                categories=("cs.LG", "cs.CL") if i % 2 else ("cs.LG",),
                arxiv_id=p["id"],
                published=NOW - timedelta(days=1, minutes=i),
                upvotes=p.get("upvotes"),
                code_url=f"https://github.com/example/repo{i}" if i % 3 == 0 else None,
                project_url=f"https://example.org/project{i}" if i % 4 == 0 else None,
            )
        )
    return out


def match_for(entry: Entry, i: int = 0) -> Match:
    reasons = [Reason(ReasonKind.KEYWORD, '"quantization" in title', "quantization")]
    if i % 2:
        reasons.append(Reason(ReasonKind.KEYWORD, '"FP8 training" in abstract', "FP8 training"))
    if i % 5 == 0:
        reasons.append(Reason(ReasonKind.CATEGORY, "in cs.LG", "cs.LG"))
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
