"""The "manage your digest" form: a profile as form fields, and form fields back into the file.

Pure functions over text: :func:`form_of` fills the form from a profile;
:func:`apply_form` writes the submitted fields into the profile file's TOML
with tomlkit, so the reader's comments and the keys the form does not show
survive.  The result is validated by :func:`newsletter.profiles.parse_profile`,
the same check as ``newsletter profiles check``, before anything is written.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

import tomlkit
from tomlkit.items import Table

from .types import Profile

FREQUENCIES = (
    ("daily", "Every day"),
    *((f"weekly:{d}", f"Weekly, on {name}") for d, name in (
        ("mon", "Monday"), ("tue", "Tuesday"), ("wed", "Wednesday"), ("thu", "Thursday"), ("fri", "Friday"),
        ("sat", "Saturday"), ("sun", "Sunday"),
    )),
)  # fmt: skip
_ARXIV_URL = re.compile(r"arxiv\.org/(?:abs|pdf)/([^\s?#]+?)(?:\.pdf)?(?:[?#].*)?$", re.IGNORECASE)
LISTS = ("keywords", "exclude", "authors", "categories", "papers")
MAX_FIELD_CHARS = 64_000
"""A submitted field longer than this is cut: the file's own caps then report what is too long."""


def version_of(text: str) -> str:
    """A short fingerprint of the file as the page showed it: saving refuses a file edited since."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def form_of(profile: Profile) -> dict[str, str]:
    """The form's fields for *profile*, as text."""
    i = profile.interests
    keywords = [k.text if k.weight == 1 else f"{k.text} | {k.weight:g}" for k in i.keywords]
    return {
        "keywords": "\n".join(keywords),
        "exclude": "\n".join(i.exclude),
        "authors": "\n".join(i.authors),
        "categories": "\n".join(i.categories),
        "papers": "\n".join(i.papers),
        "frequency": profile.frequency,
        "send_at": f"{profile.send_at:%H:%M}",
        "timezone": profile.timezone,
        "max_items": str(profile.max_items),
        "paused": "1" if profile.paused else "",
    }


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value[:MAX_FIELD_CHARS].splitlines() if line.strip()]


def _paper(line: str) -> str:
    """An arXiv link as its id (``https://arxiv.org/abs/2402.15627v2`` -> ``2402.15627v2``); anything else as is."""
    found = _ARXIV_URL.search(line)
    return found.group(1) if found else line


def _keyword(line: str) -> str | dict[str, object]:
    text, bar, weight = line.rpartition("|")
    if not bar:
        return line
    try:
        value = float(weight.strip())
    except ValueError:
        return line
    return text.strip() if value == 1 else {"text": text.strip(), "weight": value}


def apply_form(text: str, form: Mapping[str, str]) -> str:
    """The profile file *text* with the submitted *form* fields written in, comments and other keys kept."""
    doc = tomlkit.parse(text.removeprefix("\ufeff"))
    for key in ("frequency", "send_at", "timezone"):
        if key in form:
            doc[key] = form[key].strip()[:100]
    if "max_items" in form:
        raw = form["max_items"].strip()
        doc["max_items"] = int(raw) if raw.isdigit() else raw[:20]
    doc["paused"] = form.get("paused", "") == "1"
    interests = doc.get("interests")
    if not isinstance(interests, Table):
        interests = tomlkit.table()
        doc["interests"] = interests
    for key in LISTS:
        if key not in form:
            continue
        lines = _lines(form[key])
        values: list[object]
        if key == "keywords":
            values = [_keyword(v) for v in lines]
        elif key == "papers":
            values = [_paper(v) for v in lines]
        else:
            values = list(lines)
        if not values and key not in interests:
            continue
        array = tomlkit.array()
        for v in values:
            if isinstance(v, dict):
                table = tomlkit.inline_table()
                table.update(v)
                array.append(table)
            else:
                array.append(v)
        if len(values) > 3:
            array.multiline(True)
        interests[key] = array
    return tomlkit.dumps(doc)
