"""The reader's pages in a real browser: Debian's chromium, driven by selenium through Debian's chromedriver.

The app's HTTP side runs on 127.0.0.1 (uvicorn in a thread, the same ASGI app
``serve`` runs); the browser fills the manage form, watches the live preview
change, saves, reloads, and the test reads the profile file.  Screenshots at
1280 and 375 px go to ``tests/artifacts/`` for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from servekit import free_port

from newsletter import profiles as profile_files
from newsletter.config import Settings
from newsletter.pipeline import App, make_app
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


@pytest.fixture
def site(settings: Settings) -> Iterator[tuple[App, str]]:
    import uvicorn

    port = free_port()
    settings = settings.model_copy(
        update={"site": settings.site.model_copy(update={"base_url": f"http://127.0.0.1:{port}"})}
    )
    with make_app(settings) as app:
        app.fetch()
        app.load_profiles()
        server = uvicorn.Server(uvicorn.Config(create_web_app(app), host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        try:
            yield app, f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(10)


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
