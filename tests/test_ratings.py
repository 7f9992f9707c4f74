"""Rating a paper from the digest: "more like this" / "less like this" (issue 17).

A link scanner that GETs or HEADs every link records nothing; only the page's
button (a POST with a recent form nonce) does, durably in the ledger and then
in the reader's profile file, keeping their comments.
"""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from newsletter import profiles as profile_files
from newsletter.config import Settings
from newsletter.errors import ProfileError
from newsletter.pipeline import CALIBRATE_REASON, App
from newsletter.types import Digest, Match, Reason, ReasonKind

PAPER = "arxiv:2510.19702"  # Q-HyViT, in the bundled fixture


def nonce_of(page: str) -> str:
    found = re.search(r'name="nonce" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def confirm(client: TestClient, url: str, **extra: str) -> object:
    page = client.get(url)
    assert page.status_code == 200
    return client.post(url, data={"nonce": nonce_of(page.text), **extra})


def test_a_link_scanner_records_nothing(app: App, client: TestClient) -> None:
    profile = app.settings.paths.profiles_dir / "ada.toml"
    before = profile.read_text()
    url = f"/rate/{app.tokens.rating('ada', PAPER, 'liked')}"
    for method in ("GET", "HEAD", "GET"):
        assert client.request(method, url).status_code == 200
    assert app.ledger.ratings("ada") == {}
    assert profile.read_text() == before
    page = client.get(url).text
    assert "More like this" in page and "Q-HyViT" in page and "<button" in page


def test_confirming_records_it_and_writes_the_profile_keeping_comments(app: App, client: TestClient) -> None:
    path = app.settings.paths.profiles_dir / "ada.toml"
    r = confirm(client, f"/rate/{app.tokens.rating('ada', PAPER, 'liked')}")
    assert r.status_code == 200 and "Saved" in r.text  # type: ignore[attr-defined]
    assert app.ledger.ratings("ada")[PAPER][0] == "liked"
    text = path.read_text()
    assert text.startswith("# Ada's profile: edit this file"), "the reader's comments are kept"
    assert "[feedback] # written by the links in your digest; edit freely" in text
    assert 'liked = ["2510.19702"]' in text
    assert profile_files.load_profile(path).feedback.liked == (PAPER,)
    # changing one's mind moves it to the other list
    confirm(client, f"/rate/{app.tokens.rating('ada', PAPER, 'disliked')}")
    feedback = profile_files.load_profile(path).feedback
    assert feedback.liked == () and feedback.disliked == (PAPER,)


def test_undo_takes_the_rating_back(app: App, client: TestClient) -> None:
    url = f"/rate/{app.tokens.rating('ada', PAPER, 'liked')}"
    saved = confirm(client, url)
    r = client.post(url, data={"nonce": nonce_of(saved.text), "undo": "1"})  # type: ignore[attr-defined]
    assert r.status_code == 200 and "taken back" in r.text
    assert not profile_files.load_profile(app.settings.paths.profiles_dir / "ada.toml").feedback
    assert app.ledger.ratings("ada")[PAPER][0] is None


def test_the_file_is_the_truth_deleting_an_id_takes_the_rating_back(app: App, client: TestClient) -> None:
    path = app.settings.paths.profiles_dir / "ada.toml"
    confirm(client, f"/rate/{app.tokens.rating('ada', PAPER, 'liked')}")
    path.write_text(path.read_text().replace('liked = ["2510.19702"]', "liked = []"))
    assert not profile_files.load_profile(path).feedback


def test_posts_need_the_page_the_signature_and_our_origin(app: App, client: TestClient) -> None:
    url = f"/rate/{app.tokens.rating('ada', PAPER, 'liked')}"
    assert client.post(url, data={}).status_code == 400, "no form nonce: a scripted POST"
    other = f"/rate/{app.tokens.rating('grace', PAPER, 'liked')}"
    stolen = nonce_of(client.get(other).text)
    assert client.post(url, data={"nonce": stolen}).status_code == 400, "a nonce is bound to its own link"
    nonce = nonce_of(client.get(url).text)
    assert client.post(url, data={"nonce": nonce}, headers={"Origin": "https://evil.example.com"}).status_code == 403
    token = app.tokens.rating("ada", PAPER, "liked")
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    assert client.get(f"/rate/{forged}").status_code == 400
    assert app.ledger.ratings("ada") == {}


def test_ratings_are_rate_limited_per_reader(app: App, client: TestClient) -> None:
    from newsletter.ratings import READER_LIMIT

    ids = [f"arxiv:2401.{10000 + i}" for i in range(READER_LIMIT[0] + 1)]
    codes = [confirm(client, f"/rate/{app.tokens.rating('ada', i, 'liked')}").status_code for i in ids]  # type: ignore[attr-defined]
    assert codes[:-1] == [200] * READER_LIMIT[0] and codes[-1] == 429


def test_newsletter_feedback_lists_the_ratings_of_the_file(app: App, client: TestClient, settings: Settings) -> None:
    from click.testing import CliRunner

    from newsletter.cli import cli

    confirm(client, f"/rate/{app.tokens.rating('ada', PAPER, 'liked')}")
    path = settings.paths.profiles_dir / "ada.toml"
    path.write_text(path.read_text().replace("disliked = []", 'disliked = ["2502.60312"]'))  # by hand
    config = settings.paths.profiles_dir.parent / "newsletter.toml"
    config.write_text(f'[paths]\ndata_dir = "{settings.paths.data_dir.name}"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "feedback", "ada"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("liked") and "2510.19702" in lines[0] and "Q-HyViT" in lines[0]
    assert "acts as a seed paper" in lines[0]
    assert lines[1].startswith("disliked  by hand") and "NUPES" in lines[1]


def test_a_rating_changes_the_next_preview(app: App, client: TestClient) -> None:
    """Liked papers act as seeds from the first rating, with the reason saying so; disliked ones never come back."""
    before = app.preview("ada", days=7)
    first = before.matches[0].entry.id
    liked = "arxiv:2510.19702"  # Q-HyViT: post-training quantization of hybrid vision transformers
    confirm(client, f"/rate/{app.tokens.rating('ada', liked, 'liked')}")
    confirm(client, f"/rate/{app.tokens.rating('ada', first, 'disliked')}")
    after = app.preview("ada", days=7)
    assert first not in {m.entry.id for m in after.matches}, "a disliked paper is not offered again"
    reasons = [r.text for m in after.matches for r in m.reasons]
    assert any(r.startswith('like "Q-HyViT') and r.endswith("that you liked") for r in reasons), reasons
    assert [m.entry.id for m in after.matches] != [m.entry.id for m in before.matches]
    assert app._models is not None and app._models.fits == 1, "one model trained for ada's two ratings"


def _rate_by_hand(app: App, liked: list[str], disliked: list[str], *, calibrate: bool | None) -> None:
    """Ada's [feedback] section as a reader would write it (the file is the truth)."""
    path = app.settings.paths.profiles_dir / "ada.toml"
    text = path.read_text().split("\n[feedback]")[0]

    def ids(xs: list[str]) -> str:
        return ", ".join(f'"{i.removeprefix("arxiv:")}"' for i in xs)

    option = "" if calibrate is None else f"calibrate = {str(calibrate).lower()}\n"
    path.write_text(f"{text}\n[feedback]\n{option}liked = [{ids(liked)}]\ndisliked = [{ids(disliked)}]\n")


def _calibrating(digest: Digest) -> list[Match]:
    return [m for m in digest.matches if any(r.kind is ReasonKind.CALIBRATE for r in m.reasons)]


def test_calibrate_adds_one_marked_unrated_paper_and_only_when_asked(app: App) -> None:
    """``[feedback] calibrate = true``: one more paper, from just below the cut, never a rated one, marked as such
    in the reason line, the HTML badge, the text part and the feed; without the option the digest is unchanged."""
    first = app.preview("ada", days=7)
    ids = [m.entry.id for m in first.matches]
    assert len(ids) == first.profile.max_items
    liked, disliked = ids[:2], ids[2:5]  # two of each: a logistic model, so the pick is by uncertainty
    for option in (None, False):
        _rate_by_hand(app, liked, disliked, calibrate=option)
        off = app.preview("ada", days=7)
        assert not _calibrating(off), "absent when the option is off"
    _rate_by_hand(app, liked, disliked, calibrate=True)
    on = app.preview("ada", days=7)
    marked = _calibrating(on)
    assert len(marked) == 1 and on.matches[-1] is marked[0], "one pick, after the reader's own"
    pick = marked[0]
    assert [m.entry.id for m in on.matches[:-1]] == [m.entry.id for m in off.matches], "the picks themselves stay"
    assert pick.entry.id not in {*liked, *disliked} and pick.entry.id not in {m.entry.id for m in off.matches}
    assert pick.reasons[0] == Reason(ReasonKind.CALIBRATE, CALIBRATE_REASON)

    links = app.links("ada", on.period, [m.entry.id for m in on.matches])
    email = app.renderer.email(on, links)
    assert email.html.count(">To calibrate</p>") == 1 and email.text.count("TO CALIBRATE") == 1
    line = "To calibrate: not picked for your interests"
    assert email.html.count(line) == 1 and email.text.count(line) == 1
    feed = app.renderer.feed(on.profile, on.matches, kind="atom", self_url=links.atom_url, updated=on.generated_at)
    assert feed.count(line) == 1
    plain = app.renderer.email(off, app.links("ada", off.period, [m.entry.id for m in off.matches]))
    assert "calibrate" not in plain.html.lower() and "calibrate" not in plain.text.lower()


def test_calibrate_must_be_true_or_false(app: App) -> None:
    path = app.settings.paths.profiles_dir / "ada.toml"
    path.write_text(path.read_text() + '\n[feedback]\ncalibrate = "often"\n')
    with pytest.raises(ProfileError) as caught:
        profile_files.load_profile(path)
    assert "calibrate" in caught.value.detail and "calibrate = true" in str(caught.value), str(caught.value)


def test_a_readers_model_is_kept_in_the_store_and_not_refitted_by_the_next_run(app: App) -> None:
    """A run that starts afresh (no models in memory) loads the model fitted before instead of fitting it again,
    and refits only when the ratings change."""
    ids = [m.entry.id for m in app.preview("ada", days=7).matches]
    _rate_by_hand(app, ids[:2], ids[2:5], calibrate=None)
    first = app.preview("ada", days=7)
    assert app._models is not None and app._models.fits == 1
    stored = app.store.reader_models(["ada"])
    assert set(stored) == {"ada"} and stored["ada"][0] == app._models.key("ada")
    app._models = None  # as a new process starts
    again = app.preview("ada", days=7)
    assert app._models is not None and app._models.fits == 0, "loaded from the store, not refitted"
    assert [m.entry.id for m in again.matches] == [m.entry.id for m in first.matches]
    _rate_by_hand(app, ids[:2], ids[2:6], calibrate=None)
    app.preview("ada", days=7)
    assert app._models.fits == 1 and app.store.reader_models(["ada"])["ada"][0] == app._models.key("ada")
