"""The HTTP app of ``newsletter serve``: unsubscribe (RFC 8058), feeds, health."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from newsletter import profiles as profile_files
from newsletter.config import Settings
from newsletter.errors import ProfileError
from newsletter.pipeline import App, make_app
from newsletter.web import create_web_app


@pytest.fixture
def app(settings: Settings) -> Iterator[App]:
    with make_app(settings) as a:
        a.load_profiles()
        yield a


@pytest.fixture
def client(app: App) -> TestClient:
    return TestClient(create_web_app(app), follow_redirects=False)


def paused(app: App, reader: str) -> tuple[bool, bool]:
    """(in the profile file, as the app decides it: file and ledger together)"""
    path = app.settings.paths.profiles_dir / f"{reader}.toml"
    try:
        profile = profile_files.load_profile(path)
    except ProfileError:
        return False, app.ledger.unsubscribed_at(reader) is not None
    return profile.paused, app.is_paused(profile)


def test_one_click_post_pauses_file_and_ledger_and_is_idempotent(app: App, client: TestClient) -> None:
    url = f"/unsubscribe/{app.tokens.unsubscribe('ada')}"
    before = (app.settings.paths.profiles_dir / "ada.toml").read_text()
    r = client.post(
        url, content="List-Unsubscribe=One-Click", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 200 and "location" not in r.headers
    assert paused(app, "ada") == (True, True)
    after = (app.settings.paths.profiles_dir / "ada.toml").read_text()
    assert "paused = true" in after and after.startswith(before.splitlines()[0]), "comments are kept"
    assert client.post(url).status_code == 200, "a second POST (no body, no cookie) is fine too"
    assert paused(app, "ada") == (True, True)
    assert paused(app, "grace") == (False, False)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_get_and_head_change_nothing(app: App, client: TestClient, method: str) -> None:
    url = f"/unsubscribe/{app.tokens.unsubscribe('ada')}"
    r = client.request(method, url)
    assert r.status_code == 200
    if method == "GET":
        assert '<form method="post"' in r.text and "<button" in r.text
    assert paused(app, "ada") == (False, False)


@pytest.mark.parametrize("token", ["forged", "x.y.z"])
def test_forged_tokens_change_nothing(app: App, client: TestClient, token: str) -> None:
    assert client.post(f"/unsubscribe/{token}").status_code == 400
    assert client.get(f"/unsubscribe/{token}").status_code == 400
    assert all(paused(app, r) == (False, False) for r in ("ada", "grace", "alan"))


def test_a_token_signed_with_another_secret_or_a_feed_token_is_refused(app: App, client: TestClient) -> None:
    from newsletter.delivery import Tokens

    assert client.post(f"/unsubscribe/{Tokens('other secret').unsubscribe('ada')}").status_code == 400
    assert client.post(f"/unsubscribe/{app.tokens.feed('ada')}").status_code == 400
    assert paused(app, "ada") == (False, False)


def test_an_expired_token_changes_nothing(app: App, client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    token = app.tokens.unsubscribe("ada")
    assert app.tokens.check_unsubscribe(token, max_age=-1) is None
    original = app.tokens.check_unsubscribe
    monkeypatch.setattr(app.tokens, "check_unsubscribe", lambda t: original(t, max_age=-1))
    assert client.post(f"/unsubscribe/{token}").status_code == 400
    assert paused(app, "ada") == (False, False)


def test_feeds_with_etag_and_304(app: App, client: TestClient) -> None:
    app.fetch()
    app.run(force=True, fetch=False)
    token = app.tokens.feed("ada")
    for suffix, root in (("xml", b"<rss"), ("atom", b"<feed")):
        r = client.get(f"/feeds/{token}.{suffix}")
        assert r.status_code == 200 and root in r.content
        assert "max-age" in r.headers["cache-control"]
        again = client.get(f"/feeds/{token}.{suffix}", headers={"If-None-Match": r.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
    assert client.get("/feeds/forged.xml").status_code == 404
    assert client.get(f"/feeds/{token}.json").status_code == 404


def test_feed_rendered_on_the_fly_when_no_file_exists(app: App, client: TestClient) -> None:
    r = client.get(f"/feeds/{app.tokens.feed('grace')}.atom")
    assert r.status_code == 200 and b"<feed" in r.content


def test_healthz_reports_sources_and_turns_503_when_all_fail(app: App, client: TestClient) -> None:
    app.fetch()
    r = client.get("/healthz")
    body = r.json()
    assert r.status_code == 200 and body["healthy"] is True
    assert {s["name"] for s in body["sources"]} == {"arxiv-sample", "hf-sample"} and body["last_fetch"]
    broken = app.settings.model_copy(
        update={
            "sources": tuple(s.model_copy(update={"path": Path("/nonexistent/feed.xml")}) for s in app.settings.sources)
        }
    )
    app.settings = broken
    for _ in range(3):
        app.fetch()
    r = client.get("/healthz")
    assert r.status_code == 503 and sorted(r.json()["failing"]) == ["arxiv-sample", "hf-sample"]


def test_importing_web_does_not_import_starlette() -> None:
    code = "import sys, newsletter.web; print('starlette' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_unsubscribe_holds_even_when_the_profile_file_cannot_be_written(app: App, client: TestClient) -> None:
    path = app.settings.paths.profiles_dir / "ada.toml"
    path.write_text(path.read_text() + "\nthis is = not [ toml\n")  # the reader broke their file
    r = client.post(f"/unsubscribe/{app.tokens.unsubscribe('ada')}")
    assert r.status_code == 200
    assert paused(app, "ada") == (False, True), "the file could not be written: the ledger's record holds"


def test_the_unsubscribe_page_names_the_digest_and_the_address_and_offers_a_pause(app: App, client: TestClient) -> None:
    page = client.get(f"/unsubscribe/{app.tokens.unsubscribe('ada')}").text
    assert "Stop the digest <strong>newsletter to ada@example.org</strong>?" in page
    assert "Pause for a week" in page and 'action="/pause/' in page


def test_pause_for_a_week_writes_the_date_and_mail_resumes_by_itself(app: App, client: TestClient) -> None:
    from datetime import UTC, datetime, timedelta

    from newsletter.schedule import is_paused, local_day

    url = f"/pause/{app.tokens.unsubscribe('ada')}"
    path = app.settings.paths.profiles_dir / "ada.toml"
    before = path.read_text()
    assert client.get(url).status_code == 200 and path.read_text() == before, "a GET changes nothing"
    r = client.post(url)
    assert r.status_code == 200 and "is paused until" in r.text
    profile = profile_files.load_profile(path)
    now = datetime.now(UTC)
    assert profile.paused_until == local_day(profile, now) + timedelta(days=7)
    assert path.read_text().startswith(before.splitlines()[0]), "comments are kept"
    assert is_paused(profile, None, now)
    assert not is_paused(profile, None, now + timedelta(days=8)), "mail resumes by itself"


def test_view_in_browser_and_the_archive_show_what_was_sent(settings: Settings) -> None:
    from datetime import UTC, datetime

    from servekit import Clock

    clock = Clock(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
    with make_app(settings, clock=clock) as app:
        report = app.run(force=True)
        ada = next(r for r in report.deliveries if r.reader == "ada")
        client = TestClient(create_web_app(app), follow_redirects=False)
        page = client.get(f"/digest/{app.tokens.digest('ada', ada.period or '')}")
        assert page.status_code == 200
        ids = app.ledger.get("ada", ada.period or "").entry_ids  # type: ignore[union-attr]
        titles = [e.title for e in app.store.get_entries(ids).values()]
        import html

        missing = [t for t in titles if html.escape(" ".join(t.split())[:40], quote=False) not in page.text]
        assert not missing, "every paper of the digest is on the page"
        archive = client.get(f"/archive/{app.tokens.archive('ada')}")
        assert archive.status_code == 200 and ada.period in archive.text and f"{len(ids)} papers" in archive.text
        assert client.get(f"/digest/{app.tokens.digest('ada', '2020-01-01')}").status_code == 404
        assert client.get("/digest/forged").status_code == 400
