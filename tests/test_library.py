"""A reader's library as seeds: real BibTeX / RIS / CSV files in a tmp profiles folder, lookups on loopback."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from arxiv_api_server import ArxivApiServer, fixture_papers
from servekit import FakeTime

from newsletter.arxiv_lookup import ArxivLookup
from newsletter.config import FetchSettings
from newsletter.errors import LibraryError, ProfileError
from newsletter.fetch import Fetcher
from newsletter.library import MAX_BYTES, MAX_RECORDS, latex_to_text, library_seeds, read_library
from newsletter.profiles import parse_profile

FIXTURE = fixture_papers()
KNOWN = sorted(FIXTURE)[0]

BIB = rf"""% exported by a reference manager
@string{{neurips = "Advances in Neural Information Processing Systems"}}

@article{{withid,
  title        = {{Attention Is {{All}} You Need}},
  author       = {{Vaswani, Ashish and Shazeer, Noam and {{Google Brain}}}},
  eprint       = {{{KNOWN}}},
  archivePrefix = {{arXiv}},
  booktitle    = neurips # " 30",
}}

@misc{{arxivdoi,
  doi = {{10.48550/arXiv.{sorted(FIXTURE)[1]}}},
}}

@inproceedings{{journal,
  title    = "Sparse {{M}}ixture of {{E}}xperts in M{{\"u}}nchen",
  author   = "M{{\"u}}ller, J{{\"o}}rg",
  doi      = {{https://doi.org/10.1145/3600000.1}},
  abstract = {{We route tokens to experts.}},
}}

@article{{doionly, doi = {{10.1145/999}}}}

@book{{titleonly, title = {{Deep Learning}}, author = {{Goodfellow, Ian and others}}}}

@article{{typo,
  title         = {{A paper with a typo in its id}},
  eprint        = {{2402.1562}},
  archiveprefix = {{arXiv}},
}}

@article{{broken,
  title = {{The closing brace is missing,
  author = {{Nobody}}

@misc{{scholar, title = {{From Google Scholar}}, journal = {{arXiv preprint arXiv:2310.06825}}}}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    return profiles


@pytest.fixture
def lookup() -> Iterator[tuple[ArxivLookup, ArxivApiServer]]:
    fake = FakeTime()
    fetcher = Fetcher(
        FetchSettings(deadline=10, timeout=5, connect_timeout=5, retries=0),
        contact="ops@example.org",
        clock=fake.clock,
        sleep=fake.sleep,
    )
    with ArxivApiServer() as api:
        yield ArxivLookup(fetcher, base=api.base, allow_private=True), api
    fetcher.close()


def test_a_bib_with_arxiv_ids_dois_and_titles(folder: Path) -> None:
    (folder / "library.bib").write_text(BIB, encoding="utf-8")
    library = read_library(folder / "library.bib", folder)
    by_key = {r.key: r for r in library.records}
    assert list(by_key) == ["withid", "arxivdoi", "journal", "titleonly", "typo", "scholar"]
    assert by_key["withid"].arxiv_id == KNOWN and by_key["withid"].line == 4
    assert by_key["withid"].authors == ("Ashish Vaswani", "Noam Shazeer", "Google Brain")
    assert by_key["withid"].title == "Attention Is All You Need"
    assert by_key["arxivdoi"].arxiv_id == sorted(FIXTURE)[1]  # the arXiv DOI names the id
    assert by_key["journal"].doi == "10.1145/3600000.1" and by_key["journal"].arxiv_id is None
    assert by_key["journal"].title == "Sparse Mixture of Experts in München"
    assert by_key["journal"].authors == ("Jörg Müller",)
    assert by_key["titleonly"].authors == ("Ian Goodfellow",)
    assert by_key["typo"].arxiv_id is None  # kept as a title seed; the id is reported
    assert by_key["scholar"].arxiv_id == "2310.06825"

    problems = [str(p) for p in library.problems]
    path = folder / "library.bib"
    assert all(isinstance(p, LibraryError) and p.path == path for p in library.problems)
    assert any(f"{path} line 29:" in p and "2402.1562" in p and "is not an arXiv id" in p for p in problems)
    assert any(f"{path} line 23:" in p and "doionly" in p and "10.1145/999" in p for p in problems)
    assert any(f"{path} line 33:" in p and "@article" in p and "missing" in p.lower() for p in problems)
    assert len(problems) == 3


def test_library_seeds_look_up_only_what_has_no_abstract(
    folder: Path, lookup: tuple[ArxivLookup, ArxivApiServer]
) -> None:
    arxiv, api = lookup
    (folder / "library.bib").write_text(BIB, encoding="utf-8")
    result = library_seeds(read_library(folder / "library.bib", folder), arxiv)
    assert [r.ids for r in api.requests] == [(KNOWN, sorted(FIXTURE)[1], "2310.06825")]  # one batch
    seeds = {s.origin: s for s in result.seeds}
    first = seeds["library.bib line 4"]
    assert first.summary.startswith(FIXTURE[KNOWN].summary[:40]) and first.title == "Attention Is All You Need"
    assert seeds["library.bib line 12"].title == FIXTURE[sorted(FIXTURE)[1]].title  # DOI-only: title from arXiv
    assert seeds["library.bib line 16"].summary == "We route tokens to experts."  # no lookup needed
    assert seeds["library.bib line 27"].summary == ""  # the typo's record still seeds by its title
    # 2310.06825 is not among the fixture papers: reported with the line, and the record seeds by its title
    unknown = [str(p) for p in result.problems if "2310.06825" in str(p)]
    assert len(unknown) == 1 and "line 37" in unknown[0] and "arXiv has no paper 2310.06825" in unknown[0]
    assert seeds["library.bib line 37"].title == "From Google Scholar"
    assert len(result.seeds) == 7 - 1  # doionly and broken give none; scholar falls back to its title


def test_offline_records_without_a_title_are_reported(folder: Path) -> None:
    (folder / "lib.bib").write_text("@misc{a, eprint={2402.15627}, archivePrefix={arXiv}}\n", encoding="utf-8")
    result = library_seeds(read_library(folder / "lib.bib", folder), None)
    assert result.seeds == ()
    assert "line 1" in str(result.problems[0]) and "not looked up" in str(result.problems[0])


def test_ris_records(folder: Path) -> None:
    (folder / "zotero.ris").write_text(
        "TY  - JOUR\nTI  - Mixture of experts at scale\nAU  - Lovelace, Ada\nAU  - Hopper, Grace\n"
        "AB  - We study sparse routing\n  across many experts.\nDO  - 10.1000/moe.1\nER  - \n\n"
        "TY  - PREP\nTI  - An arXiv preprint\nUR  - http://arxiv.org/abs/2402.15627v2\nER  - \n"
        "stray text\n"
        "TY  - JOUR\nTI  - Unfinished\n",
        encoding="utf-8",
    )
    library = read_library(folder / "zotero.ris", folder)
    first, second, third = library.records
    assert first.title == "Mixture of experts at scale" and first.authors == ("Ada Lovelace", "Grace Hopper")
    assert first.abstract == "We study sparse routing across many experts." and first.doi == "10.1000/moe.1"
    assert (second.line, second.arxiv_id) == (10, "2402.15627")
    assert third.title == "Unfinished"
    problems = [str(p) for p in library.problems]
    assert [p.split(": ", 1)[0].rsplit(" ", 1)[-1] for p in problems] == ["14", "15"]
    assert "not a RIS line" in problems[0] and "no 'ER  - '" in problems[1]


def test_zotero_csv(folder: Path) -> None:
    (folder / "export.csv").write_text(
        '"Key","Item Type","Publication Year","Author","Title","DOI","Url","Abstract Note","Extra"\n'
        '"AB12","preprint","2024","Lovelace, Ada; Hopper, Grace","A CSV paper","","","","arXiv: 2310.06825"\n'
        '"CD34","journalArticle","2020","Turing, Alan","A title over\ntwo lines","10.1/x","","An abstract.",""\n'
        '"EF56","journalArticle","2021","","","","","",""\n',
        encoding="utf-8",
    )
    library = read_library(folder / "export.csv", folder)
    a, b = library.records
    assert (a.key, a.arxiv_id, a.authors) == ("AB12", "2310.06825", ("Ada Lovelace", "Grace Hopper"))
    assert (b.line, b.title, b.abstract, b.doi) == (3, "A title over two lines", "An abstract.", "10.1/x")
    assert len(library.problems) == 1 and "line 5" in str(library.problems[0])  # EF56 has nothing to seed with


# -- hostile files ------------------------------------------------------------------


def test_a_huge_file_is_refused_unread(folder: Path) -> None:
    with (folder / "huge.bib").open("wb") as f:
        f.truncate(MAX_BYTES + 1)  # sparse: no disk used
    with pytest.raises(LibraryError, match=r"huge\.bib: is 5,000,001 bytes, over the 5,000,000 byte cap"):
        read_library(folder / "huge.bib", folder)


def test_a_binary_file_is_refused(folder: Path) -> None:
    (folder / "lib.bib").write_bytes(b"@article{a, title={x}}\n\x89PNG\r\n\x1a\n\0\0\0")
    with pytest.raises(LibraryError, match=r"lib\.bib line 4: is a binary file"):
        read_library(folder / "lib.bib", folder)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_without_blocking(folder: Path) -> None:
    os.mkfifo(folder / "pipe.bib")
    started = time.monotonic()
    with pytest.raises(LibraryError, match=r"pipe\.bib: is not a regular file"):
        read_library(folder / "pipe.bib", folder)
    assert time.monotonic() - started < 5  # no writer ever comes: opening it for reading would hang


def test_outside_the_profiles_folder_is_refused(folder: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.bib").write_text("@misc{a, title={x}}", encoding="utf-8")
    (folder / "link.bib").symlink_to(tmp_path / "secret.bib")
    for name in ("../secret.bib", "link.bib"):
        with pytest.raises(LibraryError, match="outside the profiles folder"):
            read_library(folder / name, folder)
    with pytest.raises(LibraryError, match="no such file"):
        read_library(folder / "missing.bib", folder)


def test_pathological_bibtex_stays_linear(folder: Path) -> None:
    """Inputs that took bibtexparser 2.1 minutes (40 s for 0.5 MB of '@a{'); each must stay well under a second."""
    n = MAX_BYTES - 100
    hostile = {
        "open.bib": "@a{" * (n // 3),
        "openlines.bib": "@a{\n" * (n // 4),
        "nested.bib": "@a{k, title={" + "{" * (n - 20),
        "flat.bib": "@a{k, title={" + "{}" * (n // 2 - 20),
        "quotes.bib": '@a{k, title="' + '"' * (n - 20),
        "fields.bib": "@a{k," + "a={x}," * (n // 6 - 2) + "}",
    }
    for name, text in hostile.items():
        (folder / name).write_text(text, encoding="utf-8")
        started = time.perf_counter()
        library = read_library(folder / name, folder)
        took = time.perf_counter() - started
        assert library.records == () and library.problems, name
        assert took < 10, f"{name} took {took:.1f} s"  # generous: a shared 2-core box; ~1 s measured


def test_at_most_max_records_are_read(folder: Path) -> None:
    text = "".join(f"@misc{{k{i}, title={{Paper {i}}}}}\n" for i in range(MAX_RECORDS + 5))
    (folder / "many.bib").write_text(text, encoding="utf-8")
    library = read_library(folder / "many.bib", folder)
    assert len(library.records) == MAX_RECORDS
    assert f"line {MAX_RECORDS + 1}:" in str(library.problems[-1]) and "split it" in str(library.problems[-1])


def test_latex_to_text() -> None:
    assert latex_to_text(r"Schr{\"o}dinger's \emph{cat} -- na\"ive \'{\i}ndex \ss{} \& \c{c}a") == (
        "Schrödinger's cat – naïve índex ß & ça"
    )


# -- the profile file ------------------------------------------------------------------


def test_papers_from_alone_is_enough_and_resolves_against_the_profile_folder(folder: Path) -> None:
    path = folder / "ada.toml"
    profile = parse_profile('email = "ada@example.org"\n[interests]\npapers_from = "library.bib"\n', path)
    assert profile.interests.papers_from == folder / "library.bib"
    plain = parse_profile('email = "ada@example.org"\n[interests]\nkeywords = ["x"]\n', path)
    assert plain.interests.papers_from is None


@pytest.mark.parametrize("value", ["/etc/library.bib", "../library.bib", "sub/../../library.bib"])
def test_papers_from_must_stay_in_the_folder(folder: Path, value: str) -> None:
    text = f'email = "ada@example.org"\n[interests]\npapers_from = "{value}"\n'
    with pytest.raises(ProfileError) as info:
        parse_profile(text, folder / "ada.toml")
    assert info.value.line == 3 and "profiles folder" in str(info.value)


def test_empty_interests_mention_papers_from(folder: Path) -> None:
    with pytest.raises(ProfileError, match="papers_from"):
        parse_profile('email = "ada@example.org"\n[interests]\n', folder / "ada.toml")
