"""Profile files: one test per kind of mistake, each error naming file, line and fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from newsletter import profiles
from newsletter.errors import ProfileError

GOOD = """\
email = "ada@example.org"
timezone = "Europe/Berlin"
send_at = "07:30"
frequency = "daily"
max_items = 10

[interests]
keywords = ["post-training quantization", { text = "FP8", weight = 2 }]
authors = ["Tri Dao"]
papers = ["2402.15627v2"]
"""


def check(text: str, tmp_path: Path) -> ProfileError:
    path = tmp_path / "ada.toml"
    path.write_text(text)
    with pytest.raises(ProfileError) as info:
        profiles.parse_profile(text, path)
    assert str(path) in str(info.value)
    return info.value


def test_good_profile_parses_with_canonical_seed_ids(tmp_path: Path) -> None:
    p = profiles.parse_profile(GOOD, tmp_path / "ada.toml")
    assert p.id == "ada" and p.send_at.hour == 7 and p.max_items == 10
    assert p.interests.papers == ("2402.15627",)
    assert [(k.text, k.weight) for k in p.interests.keywords] == [("post-training quantization", 1.0), ("FP8", 2.0)]


def test_unknown_key_says_did_you_mean(tmp_path: Path) -> None:
    e = check(GOOD.replace("keywords =", "keywrds ="), tmp_path)
    assert e.line == 8
    assert "keywrds" in e.detail and "did you mean `keywords`" in e.detail


def test_bad_time_zone(tmp_path: Path) -> None:
    e = check(GOOD.replace("Europe/Berlin", "Europe/Berln"), tmp_path)
    assert e.line == 2 and "Europe/Berlin" in e.detail


def test_bad_time(tmp_path: Path) -> None:
    e = check(GOOD.replace('"07:30"', '"7.30pm"'), tmp_path)
    assert e.line == 3 and "HH:MM" in e.detail


def test_invalid_email(tmp_path: Path) -> None:
    e = check(GOOD.replace("ada@example.org", "ada-at-example.org"), tmp_path)
    assert e.line == 1 and "not a valid email" in e.detail and "example.org" in e.detail


def test_empty_interests(tmp_path: Path) -> None:
    text = GOOD.split("[interests]")[0] + '[interests]\nexclude = ["speech"]\n'
    e = check(text, tmp_path)
    assert e.line == 7 and "interests are empty" in e.detail and "keywords" in e.detail


def test_wrong_type(tmp_path: Path) -> None:
    e = check(GOOD.replace("max_items = 10", 'max_items = "ten"'), tmp_path)
    assert e.line == 5 and "max_items" in e.detail and "'ten'" in e.detail


def test_bad_arxiv_id(tmp_path: Path) -> None:
    e = check(GOOD.replace("2402.15627v2", "arxiv.org/abs/oops"), tmp_path)
    assert e.line == 10 and "not an arXiv id" in e.detail and "2402.15627" in e.detail


def test_bad_frequency(tmp_path: Path) -> None:
    e = check(GOOD.replace('"daily"', '"weekly:monday"'), tmp_path)
    assert e.line == 4 and "frequency" in e.detail


def test_toml_syntax_error_has_line(tmp_path: Path) -> None:
    e = check(GOOD.replace('send_at = "07:30"', "send_at = 07:30:"), tmp_path)
    assert e.line == 3 and "not valid TOML" in e.detail


def test_several_problems_listed_with_their_lines(tmp_path: Path) -> None:
    e = check(GOOD.replace("Europe/Berlin", "Mars/Base").replace('"07:30"', '"25:00"'), tmp_path)
    assert "2 problems" in e.detail and "line 2" in e.detail and "line 3" in e.detail


def test_one_broken_file_does_not_stop_the_others(tmp_path: Path) -> None:
    (tmp_path / "ada.toml").write_text(GOOD)
    (tmp_path / "bob.toml").write_text(GOOD.replace("ada@", "bob@").replace("send_at", "sendat"))
    loaded = profiles.load_profiles(tmp_path)
    assert [p.id for p in loaded.profiles] == ["ada"]
    assert len(loaded.errors) == 1 and loaded.errors[0].path.name == "bob.toml"


def test_schema_describes_the_format() -> None:
    schema = profiles.schema()
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert {"email", "timezone", "interests"} <= set(schema["properties"])
    json.dumps(schema)  # serialisable for `newsletter schema`


def test_an_unsubscribe_holds_until_the_reader_edits_their_file() -> None:
    from datetime import UTC, datetime, timedelta

    from newsletter.profiles import is_paused

    edited = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    assert is_paused(True, edited, None)
    assert not is_paused(False, edited, None)
    assert is_paused(False, edited, edited + timedelta(seconds=1)), "unsubscribed after the last edit"
    assert not is_paused(False, edited, edited - timedelta(days=1)), "resumed: the file was edited since"
    assert is_paused(False, None, edited), "no file to go by: the unsubscribe wins"
