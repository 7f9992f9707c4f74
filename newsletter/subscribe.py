"""Joining a digest without asking the operator: `/subscribe`, double opt-in, then a profile file.

Off unless ``[site] subscribe = true``.  The form asks for an address and a
few interests; the answer is always the same page ("check your inbox"),
whether the address is new, already a reader, or refused, so the form never
reveals who reads the digest.  Only a click on the link in the confirmation
email (a signed token that expires in two days) and the button on its page
create the reader's profile file.
"""

from __future__ import annotations

import re
from pathlib import Path

import tomlkit

from . import profiles as profile_files
from .config import email_address

MAX_KEYWORDS = 10
PROFILE_HEADER = "Created by /subscribe after the reader confirmed their address; edit freely."


def clean_keywords(raw: str) -> list[str]:
    """The interests a visitor typed: one per line or comma-separated, at most :data:`MAX_KEYWORDS`, each short."""
    parts = [p.strip() for p in re.split(r"[\n,]", raw[:2000])]
    return list(dict.fromkeys(p[:100] for p in parts if p))[:MAX_KEYWORDS]


def normal_address(raw: str) -> str | None:
    """The address as a profile would hold it, or None when it is not one."""
    try:
        return email_address(raw.strip()[:254])
    except ValueError:
        return None


def profile_text(email: str, keywords: list[str]) -> str:
    """A new reader's profile file: their address and interests, the defaults spelled out to edit."""
    doc = tomlkit.document()
    doc.add(tomlkit.comment(PROFILE_HEADER))
    doc["email"] = email
    doc["timezone"] = "UTC"
    doc["send_at"] = "07:00"
    doc["frequency"] = "daily"
    interests = tomlkit.table()
    interests["keywords"] = keywords
    doc["interests"] = interests
    return tomlkit.dumps(doc)


def new_profile_path(folder: Path, email: str) -> Path:
    """A file name for a new reader from their address (``ada.lovelace@example.org`` -> ``ada-lovelace.toml``)."""
    stem = re.sub(r"[^a-z0-9]+", "-", email.split("@")[0].lower()).strip("-")[:40] or "reader"
    path = folder / f"{stem}.toml"
    n = 2
    while path.exists():
        path = folder / f"{stem}-{n}.toml"
        n += 1
    return path


def is_reader(folder: Path, email: str) -> bool:
    """Whether a profile file in *folder* already has this address (case-insensitively)."""
    key = profile_files.reader_key(email)
    loaded = profile_files.load_profiles(folder)
    return any(profile_files.reader_key(p.email) == key for p in loaded.profiles)
