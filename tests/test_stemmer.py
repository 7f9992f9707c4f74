"""PyStemmer (C) and snowballstemmer (pure Python) give the same stems: the ranking does not depend on which is used."""

from __future__ import annotations

from importlib import resources

import Stemmer
from snowballstemmer.english_stemmer import EnglishStemmer  # type: ignore[import-untyped]

from newsletter import match, sources


def fixture_words() -> set[str]:
    samples = resources.files("newsletter") / "samples"
    parsed = [
        sources.parse_document("arxiv", "arxiv", (samples / "arxiv_cs.rss").read_bytes()),
        sources.parse_document("hf", "hf", (samples / "hf_daily_papers.json").read_bytes()),
    ]
    words: set[str] = set()
    for doc in parsed:
        for item in doc.items:
            for text in (item.title, item.summary, *item.authors, *item.categories):
                words.update(match._WORD.findall(match._fold(text)))
    return words


def test_both_stemmers_agree_on_every_word_of_the_fixture_abstracts() -> None:
    words = sorted(fixture_words())
    assert len(words) > 3_000  # the fixtures' vocabulary, not a handful
    c, python = Stemmer.Stemmer("english"), EnglishStemmer()
    pairs = [(w, c.stemWord(w), python.stemWord(w)) for w in words]
    differ = [p for p in pairs if p[1] != p[2]]
    assert differ == []
    assert python.stemWord("experts") == "expert" and c.stemWord("mixture") == "mixtur"


def test_match_uses_pystemmer_when_installed() -> None:
    assert type(match._stemmer).__module__ == "Stemmer"
    assert match.tokens("Mixture-of-Experts LLMs") == ["mixtur", "expert", "llm"]
