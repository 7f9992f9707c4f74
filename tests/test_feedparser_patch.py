"""The feedparser author-regex patch (sources._defuse_author_regex) is installed, once, and checks its version."""

from __future__ import annotations

import feedparser
import feedparser.mixin
import pytest
from feedserver import arxiv_feed, arxiv_item

from newsletter import sources


def test_the_patch_is_active_on_the_installed_feedparser() -> None:
    assert feedparser.__version__.split(".")[0] == str(sources.FEEDPARSER_MAJOR)
    assert sources.AUTHOR_REGEX_DEFUSED is True
    assert getattr(feedparser.mixin._FeedParserMixin._sync_author_detail, "_defused", False) is True
    (item,) = sources.parse("arxiv", "a", arxiv_feed([arxiv_item("2401.00002", creator="a" * 131_072)]))
    assert item.authors and len(item.authors[0]) <= 200  # in time: test_sources has the 10 s timeout


def test_installing_again_does_not_wrap_twice() -> None:
    patched = feedparser.mixin._FeedParserMixin._sync_author_detail
    assert sources._defuse_author_regex() is True
    assert feedparser.mixin._FeedParserMixin._sync_author_detail is patched


def test_another_feedparser_major_version_warns_loudly() -> None:
    with pytest.warns(RuntimeWarning, match=r"feedparser 7\.0\.0 is not the 6\.x .* pin feedparser<7"):
        assert sources._defuse_author_regex("7.0.0") is True


def test_a_feedparser_without_the_patched_method_is_refused_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(feedparser.mixin._FeedParserMixin, "_sync_author_detail")
    with pytest.warns(RuntimeWarning, match="author-regex patch .* is NOT installed"):
        assert sources._defuse_author_regex() is False
