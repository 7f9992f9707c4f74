"""The reader's pages in a real browser: Debian's chromium, driven by selenium through Debian's chromedriver.

The app's HTTP side runs on 127.0.0.1 (uvicorn in a thread, the same ASGI app
``serve`` runs); the browser fills the manage form, watches the live preview
change, saves, reloads, and the test reads the profile file.  Screenshots at
1280 and 375 px go to ``tests/artifacts/`` for a person to look at, and are
compared with ``tests/golden/screens/`` (``tests/screens.py``); the app runs on
a fixed clock so the page shows the same papers on any date.  The digest as
sent (outbox, and a confirmation email through aiosmtpd) is opened in the
browser too, and its buttons clicked as a reader would: rating (issue 17) and
joining (issue 18).
"""

from __future__ import annotations

import email
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path
from typing import Any

import pytest
from screens import check_screenshot
from servekit import KEYWORD, SMTPServer, free_port, make_settings, write_config, write_feed, write_reader

from newsletter import profiles as profile_files
from newsletter.config import Settings
from newsletter.pipeline import App, make_app
from newsletter.types import DeliveryStatus
from newsletter.web import create_web_app

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = Path(__file__).parent / "artifacts"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        (CHROMIUM is None or CHROMEDRIVER is None) and not os.environ.get("CI"),
        reason="needs Debian's chromium and chromium-driver; required under CI",
    ),
]


NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
"""The app's clock in these tests: the same papers are "this week" on any date, so screenshots compare."""


@contextmanager
def serving(app: App) -> Iterator[str]:
    """*app*'s HTTP side (what ``serve`` runs) under uvicorn on 127.0.0.1 at its base URL's port."""
    import uvicorn

    port = int(app.settings.site.base_url.rsplit(":", 1)[1])
    server = uvicorn.Server(uvicorn.Config(create_web_app(app), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield app.settings.site.base_url
    finally:
        server.should_exit = True
        thread.join(10)


def on_loopback(settings: Settings, **site: object) -> Settings:
    """*settings* with the site on a free port of 127.0.0.1 (links in emails point there)."""
    update = {"base_url": f"http://127.0.0.1:{free_port()}", **site}
    return settings.model_copy(update={"site": settings.site.model_copy(update=update)})


@pytest.fixture
def site(settings: Settings) -> Iterator[tuple[App, str]]:
    with make_app(on_loopback(settings), clock=lambda: NOW) as app:
        app.fetch()
        app.load_profiles()
        with serving(app) as base:
            yield app, base


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM or "/usr/bin/chromium"
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--window-size=1280,1600",
    ):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER or "/usr/bin/chromedriver"), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_a_reader_edits_their_interests_sees_the_preview_change_and_saves(
    site: tuple[App, str], browser: object
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    app, base = site
    driver = browser  # a selenium WebDriver
    url = f"{base}/manage/{app.tokens.manage('ada')}"
    driver.get(url)  # type: ignore[attr-defined]
    preview = driver.find_element(By.ID, "preview")  # type: ignore[attr-defined]
    before = preview.text
    assert "This week, with these settings" in before
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "manage-1280.png"))  # type: ignore[attr-defined]
    keywords = driver.find_element(By.ID, "keywords")  # type: ignore[attr-defined]
    keywords.clear()
    keywords.send_keys("mixture of experts\nexpert routing")
    WebDriverWait(driver, 20).until(lambda d: "mixture of experts" in d.find_element(By.ID, "preview").text)
    driver.find_element(By.CSS_SELECTOR, 'button[value="save"]').click()  # type: ignore[attr-defined]
    WebDriverWait(driver, 20).until(lambda d: "Saved." in d.page_source)
    driver.refresh()  # type: ignore[attr-defined]
    assert driver.find_element(By.ID, "keywords").get_attribute("value").splitlines() == [  # type: ignore[attr-defined]
        "mixture of experts",
        "expert routing",
    ]
    profile = profile_files.load_profile(app.settings.paths.profiles_dir / "ada.toml")
    assert [k.text for k in profile.interests.keywords] == ["mixture of experts", "expert routing"]
    driver.set_window_size(375, 1400)  # type: ignore[attr-defined]
    driver.save_screenshot(str(ARTIFACTS / "manage-375.png"))  # type: ignore[attr-defined]
    width = driver.execute_script("return document.documentElement.scrollWidth")  # type: ignore[attr-defined]
    assert width <= 375, "no sideways scrolling on a phone"
    for size in (1280, 375):  # the pictures as committed (tests/golden/screens/), within a tolerance
        check_screenshot(ARTIFACTS / f"manage-{size}.png", f"manage-{size}")


def _html_part(raw: bytes) -> str:
    """The HTML part of a sent message, as a mail client finds it."""
    message = email.message_from_bytes(raw, policy=policy.default)
    part = message.get_body(("html",))
    assert part is not None, "the message has no HTML part"
    return str(part.get_content())  # type: ignore[attr-defined]


def _card_of(driver: Any, title: str) -> Any:
    """The email's card of the paper titled *title* (the block holding its buttons)."""
    from selenium.webdriver.common.by import By

    link = driver.find_element(By.XPATH, f"//p[@class='t']/a[normalize-space()={_xpath_literal(title)}]")
    return link.find_element(By.XPATH, "./ancestor::div[contains(concat(' ', @class, ' '), ' card ')][1]")


def _paper_id(card: Any) -> str:
    """The entry id of a card's paper, from its "Abstract" button (arxiv.org/abs/ID)."""
    from selenium.webdriver.common.by import By

    return "arxiv:" + str(card.find_element(By.LINK_TEXT, "Abstract").get_attribute("href")).rsplit("/", 1)[1]


def _xpath_literal(text: str) -> str:
    """*text* as an XPath string literal, whatever quotes it holds."""
    if '"' not in text:
        return f'"{text}"'
    return "concat(" + ", '\"', ".join(f'"{part}"' for part in text.split('"')) + ")"


def _button(driver: Any, label: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.XPATH, f"//button[normalize-space()={_xpath_literal(label)}]")


def _liked_reasons(app: App) -> list[str]:
    return [r.text for m in app.preview("ada", days=7).matches for r in m.reasons if r.text.endswith("that you liked")]


def test_a_reader_rates_papers_from_the_email_they_got(site: tuple[App, str], browser: Any, tmp_path: Path) -> None:
    """Issue 17: the digest as sent, opened in chromium: its buttons, the confirmation page, the file, the preview."""
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    app, base = site
    path = app.settings.paths.profiles_dir / "ada.toml"
    sent = {r.reader: r for r in app.deliver(force=True)}["ada"]
    assert sent.path is not None and sent.items >= 5, sent
    mail = tmp_path / "ada.html"
    mail.write_text(_html_part(sent.path.read_bytes()), encoding="utf-8")
    driver = browser
    driver.get(mail.as_uri())
    titles = [a.text for a in driver.find_elements(By.XPATH, "//p[@class='t']/a")]
    assert len(titles) == sent.items
    liked_title, disliked_title = titles[2], titles[4]
    rate_link = _card_of(driver, liked_title).find_element(By.LINK_TEXT, "More like this")
    liked_id = _paper_id(_card_of(driver, liked_title))
    href = rate_link.get_attribute("href")
    assert href.startswith(f"{base}/rate/"), href
    original = path.read_text()
    assert _liked_reasons(app) == [], "nothing liked yet"

    # A link scanner fetches every link of a message: that records nothing.
    for method in ("GET", "HEAD"):
        assert httpx.request(method, href, timeout=10).status_code == 200
    rate_link.click()
    WebDriverWait(driver, 20).until(lambda d: d.title == "More like this?")
    assert liked_title in driver.find_element(By.TAG_NAME, "body").text
    assert path.read_text() == original and app.ledger.ratings("ada") == {}, "neither a scanner nor the page records"

    _button(driver, "Confirm: more like this").click()
    WebDriverWait(driver, 20).until(lambda d: d.title == "Thank you")
    assert f"Saved: more like this {liked_title}." in driver.find_element(By.TAG_NAME, "body").text
    text = path.read_text()
    for line in original.splitlines():
        if "#" in line:
            assert line in text, f"the reader's comment line is kept: {line!r}"
    assert f'liked = ["{liked_id.removeprefix("arxiv:")}"]' in text.split("[feedback]", 1)[1], text
    feedback = profile_files.load_profile(path).feedback
    assert feedback.liked == (liked_id,) and feedback.disliked == ()
    reasons = _liked_reasons(app)
    assert reasons, "the next digest says which liked paper each pick is like"
    assert any(r.startswith(f'like "{liked_title[:15]}') for r in reasons), reasons

    # "Less like this" on another paper: it leaves this week's picks; Undo brings it back.
    def this_week() -> set[str]:
        return {m.entry.id for m in app.preview_profile(app.profile("ada"), 7, fresh_only=False).matches}

    driver.get(mail.as_uri())
    card = _card_of(driver, disliked_title)
    disliked_id = _paper_id(card)
    assert disliked_id in this_week()
    card.find_element(By.LINK_TEXT, "Less like this").click()
    WebDriverWait(driver, 20).until(lambda d: d.title == "Less like this?")
    _button(driver, "Confirm: less like this").click()
    WebDriverWait(driver, 20).until(lambda d: d.title == "Thank you")
    feedback = profile_files.load_profile(path).feedback
    assert feedback.liked == (liked_id,) and feedback.disliked == (disliked_id,)
    assert disliked_id not in this_week(), "a paper rated less like this is not offered again"
    _button(driver, "Undo").click()
    WebDriverWait(driver, 20).until(lambda d: d.title == "Taken back")
    assert profile_files.load_profile(path).feedback.disliked == ()
    assert disliked_id in this_week(), "undone: the paper is back"


def test_a_visitor_subscribes_and_confirms_from_the_email(tmp_path: Path, browser: Any) -> None:
    """Issue 18: the sign-up form in chromium, the confirmation through aiosmtpd, the new reader's first digest."""
    from click.testing import CliRunner
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from newsletter.cli import cli

    driver = browser
    write_feed(tmp_path / "lab.xml", [NOW.date() - timedelta(days=1), NOW.date()])
    with SMTPServer() as smtp:
        settings = on_loopback(make_settings(tmp_path, smtp.port), subscribe=True)
        folder = settings.paths.profiles_dir
        write_reader(folder, "ada", "UTC", "07:00")
        with make_app(settings, clock=lambda: NOW) as app, serving(app) as base:
            app.fetch()
            driver.get(f"{base}/subscribe")
            driver.find_element(By.XPATH, "//label[contains(., 'Your email address')]//input").send_keys(
                "Grace.Hopper@example.org"
            )
            driver.find_element(By.XPATH, "//label[contains(., 'Your interests')]//textarea").send_keys(
                f"{KEYWORD}\nmixture of experts"
            )
            _button(driver, "Subscribe").click()
            WebDriverWait(driver, 20).until(lambda d: d.title == "Check your inbox")
            assert sorted(p.name for p in folder.iterdir()) == ["ada.toml"], "nothing before the confirmation"
            (raw,) = smtp.messages
            message = email.message_from_bytes(raw, policy=policy.default)
            assert message["To"] == "Grace.Hopper@example.org"
            mail = tmp_path / "confirm.html"
            mail.write_text(_html_part(raw), encoding="utf-8")
            driver.get(mail.as_uri())
            driver.find_element(By.LINK_TEXT, "Confirm").click()
            WebDriverWait(driver, 20).until(lambda d: d.title == "Confirm")
            assert "Grace.Hopper@example.org" in driver.find_element(By.TAG_NAME, "body").text
            assert sorted(p.name for p in folder.iterdir()) == ["ada.toml"], "opening the link creates nothing"
            _button(driver, "Confirm").click()
            WebDriverWait(driver, 20).until(lambda d: d.title == "Welcome")

            created = folder / "grace-hopper.toml"
            profile = profile_files.load_profile(created)
            assert profile.email == "Grace.Hopper@example.org"
            assert [k.text for k in profile.interests.keywords] == [KEYWORD, "mixture of experts"]
            results = {r.reader: r for r in app.deliver(force=True)}
            assert results["grace-hopper"].status is DeliveryStatus.SENT and results["grace-hopper"].items == 4
            assert f"grace-hopper/{NOW.date().isoformat()}" in smtp.digests()
        config = write_config(tmp_path, smtp.port)
        listed = CliRunner().invoke(cli, ["--config", str(config), "profiles", "list"])
        assert listed.exit_code == 0, listed.output
        assert "grace-hopper" in listed.output and "Grace.Hopper@example.org" in listed.output, listed.output
