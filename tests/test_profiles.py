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


def test_several_problems_one_per_line_each_with_its_line(tmp_path: Path) -> None:
    e = check(GOOD.replace("Europe/Berlin", "Mars/Base").replace('"07:30"', '"25:00"'), tmp_path)
    assert [line for line, _ in e.problems] == [2, 3]
    lines = str(e).splitlines()
    assert len(lines) == 2
    assert lines[0].endswith(
        "ada.toml line 2: `timezone`: unknown time zone 'Mars/Base'; "
        'use an IANA name like "Europe/Berlin" (a continent/city pair)'
    )
    assert lines[1].endswith(
        "ada.toml line 3: `send_at`: '25:00' is not a time: use HH:MM on a 24-hour clock, e.g. \"07:30\""
    )


# -- each mistake found by trying (issue 13): the file, the right line, what is allowed, a fix ----------------


def test_weekly_with_a_long_day_name_says_what_is_allowed(tmp_path: Path) -> None:
    e = check(GOOD.replace('frequency = "daily"', 'frequency = "weekly:monday"'), tmp_path)
    assert e.line == 4
    assert 'use "daily", or "weekly:DAY" with DAY one of mon, tue, wed, thu, fri, sat, sun' in e.detail
    assert 'did you mean "weekly:mon"?' in e.detail and "^(" not in e.detail


def test_category_in_capitals_suggests_the_right_spelling(tmp_path: Path) -> None:
    e = check(GOOD.replace('authors = ["Tri Dao"]', 'categories = ["CS.CL"]'), tmp_path)
    assert e.line == 9
    assert "'CS.CL' is not an arXiv category" in e.detail and 'did you mean "cs.CL"?' in e.detail
    assert "^[" not in e.detail


def test_typo_inside_an_inline_table_says_did_you_mean(tmp_path: Path) -> None:
    e = check(GOOD.replace("weight = 2", "wieght = 2"), tmp_path)
    assert e.line == 8
    assert len(e.problems) == 1, e.problems
    assert "unknown key `interests.keywords.1.wieght`; did you mean `weight`?" in e.detail


def test_a_list_where_text_belongs_shows_how_to_write_it(tmp_path: Path) -> None:
    e = check(GOOD.replace('email = "ada@example.org"', 'email = "ada@example.org"\nname = ["Ada"]'), tmp_path)
    assert e.line == 2
    assert "`name`: Input should be a valid string (got ['Ada']); write it like name = \"Ada\"" in e.detail


def test_missing_closing_bracket_points_at_the_line_that_opened_the_list(tmp_path: Path) -> None:
    broken = GOOD.replace('authors = ["Tri Dao"]', 'authors = ["Tri Dao"')
    e = check(broken, tmp_path)
    assert e.line == 9, "the list opens on line 9; the parser notices on line 10"
    assert "this list is not closed: end it with `]`" in e.detail
    at_the_end = GOOD.replace('papers = ["2402.15627v2"]', 'papers = ["2402.15627v2"')
    assert check(at_the_end, tmp_path).line == 10


def test_missing_comma_or_quote_says_which(tmp_path: Path) -> None:
    e = check(
        GOOD.replace('keywords = ["post-training quantization", {', 'keywords = ["post-training quantization" {'),
        tmp_path,
    )
    assert e.line == 8 and "look for a missing comma or quote" in e.detail
    e = check(GOOD.replace('authors = ["Tri Dao"]', 'authors = ["Tri Dao]'), tmp_path)
    assert e.line == 9 and "has no closing quote" in e.detail


def test_missing_interests_section_gives_an_example(tmp_path: Path) -> None:
    e = check(GOOD.split("[interests]")[0], tmp_path)
    assert '`interests` is required: add it, e.g. [interests] with keywords = ["mixture of experts"] below it' in (
        e.detail
    )


def test_zone_abbreviation_names_the_zone_it_usually_means(tmp_path: Path) -> None:
    e = check(GOOD.replace("Europe/Berlin", "BST"), tmp_path)
    assert e.line == 2 and 'BST is an abbreviation, not a zone: write the place, e.g. "Europe/London"' in e.detail
    assert "MST" not in e.detail


def test_a_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "ada.toml"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.encode())
    assert profiles.load_profile(path).email == "ada@example.org"


# -- hostile files (issue 14): one file can never stop the others --------------------------------------------


def test_deep_nesting_is_a_broken_file_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "ada.toml").write_text(GOOD)
    (tmp_path / "deep.toml").write_text("x = " + "[" * 1000 + "]" * 1000 + "\n")
    loaded = profiles.load_profiles(tmp_path)
    assert [p.id for p in loaded.profiles] == ["ada"]
    assert [e.path.name for e in loaded.errors] == ["deep.toml"]
    assert "nested far too deeply" in loaded.errors[0].detail


def test_lists_and_files_are_capped(tmp_path: Path) -> None:
    many = ", ".join(f'"kw{i}"' for i in range(profiles.MAX_KEYWORDS + 1))
    e = check(
        GOOD.replace('keywords = ["post-training quantization", { text = "FP8", weight = 2 }]', f"keywords = [{many}]"),
        tmp_path,
    )
    assert e.line == 8 and f"has {profiles.MAX_KEYWORDS + 1} items; at most {profiles.MAX_KEYWORDS} are allowed" in (
        e.detail
    )
    big = tmp_path / "big.toml"
    big.write_text(GOOD + "# " + "x" * profiles.MAX_FILE_BYTES + "\n")
    with pytest.raises(ProfileError, match="a profile may be at most 262,144 bytes"):
        profiles.load_profile(big)


def test_only_regular_files_inside_the_folder_are_read(tmp_path: Path) -> None:
    import os

    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "ada.toml").write_text(GOOD)
    os.mkfifo(folder / "fifo.toml")
    (folder / "zero.toml").symlink_to("/dev/zero")
    outside = tmp_path / "outside.toml"
    outside.write_text(GOOD.replace("ada@", "eve@"))
    (folder / "eve.toml").symlink_to(outside)
    loaded = profiles.load_profiles(folder)  # a FIFO would hang here if it were opened
    assert [p.id for p in loaded.profiles] == ["ada"]
    why = {e.path.name: e.detail for e in loaded.errors}
    assert "is not a regular file" in why["fifo.toml"]
    assert "outside the profiles folder" in why["zero.toml"] and "outside the profiles folder" in why["eve.toml"]


def test_one_address_in_two_files_is_an_error_naming_both(tmp_path: Path) -> None:
    (tmp_path / "ada.toml").write_text(GOOD)
    (tmp_path / "ada-lovelace.toml").write_text(GOOD.replace("ada@example.org", "ADA@Example.org"))
    (tmp_path / "bob.toml").write_text(GOOD.replace("ada@", "bob@"))
    loaded = profiles.load_profiles(tmp_path)
    assert [p.id for p in loaded.profiles] == ["bob"]
    why = {e.path.name: e.detail for e in loaded.errors}
    assert "also used by ada.toml" in why["ada-lovelace.toml"] and "also used by ada-lovelace.toml" in why["ada.toml"]


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


def test_an_unsubscribe_holds_until_the_reader_edits_their_file(tmp_path: Path) -> None:
    from dataclasses import replace
    from datetime import UTC, datetime, timedelta

    from newsletter.schedule import is_paused

    edited = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
    ada = replace(profiles.parse_profile(GOOD, tmp_path / "ada.toml"), mtime=edited)
    assert is_paused(replace(ada, paused=True), None)
    assert not is_paused(ada, None)
    assert is_paused(ada, edited + timedelta(seconds=1)), "unsubscribed after the last edit"
    assert not is_paused(ada, edited - timedelta(days=1)), "resumed: the file was edited since"
    assert is_paused(replace(ada, mtime=None), edited), "no file to go by: the unsubscribe wins"


def test_trending_and_layout_default_off_and_are_checked(tmp_path: Path) -> None:
    p = profiles.parse_profile(GOOD, tmp_path / "ada.toml")
    assert (p.trending, p.layout) == (0, "full")
    text = GOOD.replace("max_items = 10", 'max_items = 10\ntrending = 5\nlayout = "compact"')
    p = profiles.parse_profile(text, tmp_path / "ada.toml")
    assert (p.trending, p.layout) == (5, "compact")
    e = check(GOOD.replace("max_items = 10", 'max_items = 10\nlayout = "tiny"'), tmp_path)
    assert e.line == 6 and "layout" in e.detail and "compact" in e.detail
    e = check(GOOD.replace("max_items = 10", "max_items = 10\ntrending = -1"), tmp_path)
    assert e.line == 6 and "trending" in e.detail
