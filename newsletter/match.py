"""Ranking: which entries a reader gets, in what order, and why. Pure.

``Index(entries)`` is built once per run from the day's entries; ``rank()``
then scores them for one profile.  Nothing here touches the store, the clock
or the network: ``(entries, profile, now)`` in, ranked matches out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence, Set
from datetime import datetime

from .types import Entry, Match, Profile, Reason, ReasonKind


def _phrase(text: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in re.findall(r"\w+", text.lower())]
    return re.compile(r"\b" + r"[\W_]+".join(words) + r"\b") if words else re.compile(r"(?!)")


class Index:
    """The day's entries, prepared once and ranked for many profiles."""

    def __init__(self, entries: Sequence[Entry]) -> None:
        self.entries = tuple(entries)
        self._titles = [e.title.lower() for e in self.entries]
        self._bodies = [e.summary.lower() for e in self.entries]

    def rank(
        self,
        profile: Profile,
        now: datetime,
        *,
        exclude_ids: Set[str] = frozenset(),
        since: datetime | None = None,
    ) -> list[Match]:
        """The best entries for *profile*, best first, at most ``max_items``.

        Entries in *exclude_ids* (already delivered) and entries first seen at
        or before *since* are left out.
        """
        interests = profile.interests
        vetoes = [_phrase(x) for x in interests.exclude]
        keywords = [(k, _phrase(k.text)) for k in interests.keywords]
        cats = {c.lower() for c in interests.categories}
        authors = [a.lower() for a in interests.authors]
        out: list[Match] = []
        for entry, title, body in zip(self.entries, self._titles, self._bodies, strict=True):
            if entry.id in exclude_ids or (since is not None and entry.first_seen <= since):
                continue
            if any(v.search(title) or v.search(body) for v in vetoes):
                continue
            score = 0.0
            reasons: list[Reason] = []
            for kw, pattern in keywords:
                if pattern.search(title):
                    score += 2.0 * kw.weight
                    reasons.append(Reason(ReasonKind.KEYWORD, f'"{kw.text}" in title', kw.text))
                elif pattern.search(body):
                    score += 1.0 * kw.weight
                    reasons.append(Reason(ReasonKind.KEYWORD, f'"{kw.text}" in abstract', kw.text))
            for name in authors:
                if any(name == a.lower() for a in entry.authors):
                    score += 2.0
                    reasons.append(Reason(ReasonKind.AUTHOR, f"by {name.title()}", name))
            hit = [c for c in entry.categories if c.lower() in cats]
            if hit and (score > 0 or not keywords):
                score += 0.5
                reasons.append(Reason(ReasonKind.CATEGORY, f"in {', '.join(hit)}"))
            if score > 0 and score >= profile.min_score:
                out.append(Match(entry, round(score, 4), tuple(reasons)))
        out.sort(key=lambda m: (-m.score, m.entry.id))
        return out[: profile.max_items]


def rank(
    entries: Sequence[Entry],
    profile: Profile,
    now: datetime,
    *,
    exclude_ids: Set[str] = frozenset(),
    since: datetime | None = None,
) -> list[Match]:
    """Rank *entries* for one *profile*; see :class:`Index` for many profiles."""
    return Index(entries).rank(profile, now, exclude_ids=exclude_ids, since=since)
