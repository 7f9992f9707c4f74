"""Synthetic workloads for the benchmarks, built from the bundled fixture feeds.

Entries reuse the fixture titles and abstracts (recombined, with fresh arXiv
ids) so the vocabulary is realistic; readers draw two or three keyword phrases
from phrases that really occur in those titles, plus now and then an author,
a category or a seed paper.  Everything is seeded: the same size gives the
same workload on every run.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from datetime import UTC, datetime, time
from email.utils import format_datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from xml.sax.saxutils import escape

from newsletter.sources import merge, parse_arxiv
from newsletter.types import Entry, EntryData, Interests, Keyword, Profile

SAMPLES = Path(str(resources.files("newsletter") / "samples"))
_STOP = {
    "a",
    "an",
    "the",
    "of",
    "for",
    "and",
    "in",
    "on",
    "with",
    "to",
    "via",
    "by",
    "from",
    "at",
    "is",
    "as",
    "its",
    "large",
    "language",
    "model",
    "models",
    "towards",
    "toward",
    "using",
    "based",
    "learning",
    "efficient",
    "new",
}


@lru_cache(maxsize=1)
def fixture_items() -> tuple[EntryData, ...]:
    return tuple(parse_arxiv("fixture", (SAMPLES / "arxiv_cs.rss").read_bytes()))


@lru_cache(maxsize=1)
def vocabulary() -> tuple[str, ...]:
    """Two- and three-word phrases that occur in at least two fixture titles."""
    counts: Counter[str] = Counter()
    for item in fixture_items():
        words = re.findall(r"[a-z][a-z0-9-]+", item.title.lower())
        for n in (2, 3):
            for i in range(len(words) - n + 1):
                gram = words[i : i + n]
                if gram[0] in _STOP or gram[-1] in _STOP:
                    continue
                counts[" ".join(gram)] += 1
    phrases = [p for p, c in counts.most_common() if c >= 2]
    singles = ["quantization", "distillation", "pruning", "sparsity", "parallelism", "tokenizer", "pretraining"]
    return tuple(phrases + singles)


def make_items(m: int, *, seed: int = 1) -> list[EntryData]:
    """*m* distinct papers: fixture texts with new ids (2611.00000 onwards)."""
    rng = random.Random(seed)
    base = fixture_items()
    out = []
    for i in range(m):
        src = base[i % len(base)]
        other = base[rng.randrange(len(base))]
        arxiv_id = f"2611.{i:05d}"
        out.append(
            EntryData(
                source="bench",
                guid=f"oai:arXiv.org:{arxiv_id}v1",
                title=src.title if i < len(base) else f"{src.title} ({other.title.split(':')[0]})",
                summary=src.summary,
                link=f"https://arxiv.org/abs/{arxiv_id}",
                authors=other.authors,
                categories=src.categories,
                arxiv_id=arxiv_id,
                version=1,
                announce_type="new",
            )
        )
    return out


def make_entries(m: int, now: datetime, *, seed: int = 1) -> list[Entry]:
    """*m* stored entries (as the fetch stage would have merged them), first seen at *now*."""
    return [merge(None, d, now) for d in make_items(m, seed=seed)]


def arxiv_rss(items: list[EntryData]) -> bytes:
    """An RSS document shaped like rss.arxiv.org's, for the fetch and parse stages."""
    when = format_datetime(datetime(2026, 11, 23, 5, 0, tzinfo=UTC))
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss xmlns:arxiv="http://arxiv.org/schemas/atom" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" version="2.0"><channel><title>cs updates on arXiv.org</title>'
        "<link>http://rss.arxiv.org/rss/cs</link><description>bench</description>"
    ]
    for it in items:
        cats = "".join(f"<category>{escape(c)}</category>" for c in it.categories)
        parts.append(
            f"<item><title>{escape(it.title)}</title><link>{escape(it.link)}</link>"
            f"<description>arXiv:{it.arxiv_id}v1 Announce Type: new \nAbstract: {escape(it.summary)}</description>"
            f'<guid isPermaLink="false">{escape(it.guid)}</guid>{cats}<pubDate>{when}</pubDate>'
            f"<arxiv:announce_type>new</arxiv:announce_type><dc:creator>{escape(', '.join(it.authors))}</dc:creator>"
            "</item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode()


def make_profiles(n: int, items: list[EntryData], *, seed: int = 2) -> list[Profile]:
    """*n* readers with two or three phrases each, some with an author, category or seed paper."""
    rng = random.Random(seed)
    vocab = vocabulary()
    zones = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC", "Australia/Sydney"]
    out = []
    for i in range(n):
        keywords = tuple(Keyword(p) for p in rng.sample(vocab, rng.choice((2, 3))))
        authors = (rng.choice(items).authors[0],) if rng.random() < 0.2 and items[0].authors else ()
        categories = ("cs.LG",) if rng.random() < 0.3 else ()
        papers = (rng.choice(items).arxiv_id or "",) if rng.random() < 0.2 else ()
        out.append(
            Profile(
                id=f"reader{i:05d}",
                email=f"reader{i:05d}@example.org",
                name=f"Reader {i}",
                timezone=rng.choice(zones),
                send_at=time(7, 0),
                frequency="daily",
                interests=Interests(keywords=keywords, authors=authors, categories=categories, papers=papers),
                max_items=rng.choice((5, 10, 15, 25)),
            )
        )
    return out


def profile_toml(p: Profile) -> str:
    """The profile file a reader would have written for *p*."""

    def arr(xs: tuple[str, ...]) -> str:
        return "[" + ", ".join('"' + x.replace('"', "") + '"' for x in xs) + "]"

    return (
        f'email = "{p.email}"\nname = "{p.name}"\ntimezone = "{p.timezone}"\nsend_at = "{p.send_at:%H:%M}"\n'
        f"max_items = {p.max_items}\n\n[interests]\nkeywords = {arr(tuple(k.text for k in p.interests.keywords))}\n"
        f"authors = {arr(p.interests.authors)}\ncategories = {arr(p.interests.categories)}\n"
        f"papers = {arr(p.interests.papers)}\n"
    )
