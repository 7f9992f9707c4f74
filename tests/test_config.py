import re
from pathlib import Path

import pytest

from newsletter.config import load_settings
from newsletter.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "newsletter.toml"
    path.write_text(text)
    return path


def test_no_config_file_gives_embedded_defaults(tmp_path: Path) -> None:
    settings = load_settings(base=tmp_path)  # ./newsletter.toml is absent in the test's cwd
    assert settings.delivery.backend == "outbox"
    assert [s.kind for s in settings.sources] == ["arxiv", "hf"]
    assert all(s.path is not None and s.path.exists() for s in settings.sources)


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[paths]\ndata_dir = "d"\n[[sources]]\nname = "x"\nkind = "feed"\npath = "feeds/x.xml"\n')
    settings = load_settings(path)
    assert settings.paths.data_dir == (tmp_path / "d").resolve()
    assert settings.sources[0].path == (tmp_path / "feeds" / "x.xml").resolve()


def test_every_error_is_reported_at_once_with_line_and_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[delivery]\nbackend = "carrier-pigeon"\nfrom_adress = "x@example.org"\n\n[fetch]\ntimeout = -1\n',
    )
    with pytest.raises(ConfigError) as e:
        load_settings(path)
    text = str(e.value)
    assert "3 problems" in text
    assert "line 2: `delivery.backend`" in text and "'outbox', 'smtp' or 'sendgrid'" in text
    assert "line 3: unknown key `delivery.from_adress`; did you mean `from_address`?" in text
    assert "line 6: `fetch.timeout`" in text


def test_array_of_tables_errors_point_at_the_right_table(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[sources]]\nname = "a"\nurl = "https://example.org/a"\n\n[[sources]]\nname = "b"\nkind = "atom"\nurl = "https://example.org/b"\n',
    )
    with pytest.raises(ConfigError, match=r"line 7: `sources.1.kind`"):
        load_settings(path)


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[paths]\ndata_dir = \n")
    with pytest.raises(ConfigError, match=r"newsletter.toml line 2: not valid TOML"):
        load_settings(path)


def test_explicit_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="newsletter init"):
        load_settings(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("section", "text", "expected"),
    [
        ("delivery", 'reply_to = "not an address"', "`delivery.reply_to`: 'not an address' is not a valid email"),
        ("delivery", 'unsubscribe_mailto = "x@"', "`delivery.unsubscribe_mailto`"),
        ("site", 'base_url = "https://example.org/a b"', "`site.base_url`: 'https://example.org/a b' is not a web"),
        ("site", 'base_url = "https://example.org/\\r\\nX-Evil: 1"', "`site.base_url`"),
        ("site", 'base_url = "https://"', "`site.base_url`: 'https://' is not a web address"),
    ],
)
def test_addresses_and_urls_are_checked_before_any_send(tmp_path: Path, section: str, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match="line 2: " + re.escape(expected)):
        load_settings(write(tmp_path, f"[{section}]\n{text}\n"))


def test_a_config_file_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "newsletter.toml"
    path.write_bytes('[site]\ntitle = "Caf\u00e9"\n'.encode("latin-1"))
    with pytest.raises(ConfigError, match=r"not UTF-8 text .* save it as UTF-8"):
        load_settings(path)
