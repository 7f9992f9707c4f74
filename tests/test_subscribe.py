"""Joining a digest (issue 18): /subscribe, a confirmation email through a real SMTP server, then a profile file."""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from email import policy
from pathlib import Path

import pytest
from servekit import SMTPServer, make_settings
from starlette.testclient import TestClient

from newsletter import profiles as profile_files
from newsletter.pipeline import App, make_app
from newsletter.web import create_web_app


@pytest.fixture
def smtp() -> Iterator[SMTPServer]:
    with SMTPServer() as server:
        yield server


def app_for(tmp_path: Path, smtp: SMTPServer, *, subscribe: bool = True) -> App:
    settings = make_settings(tmp_path, smtp.port)
    settings = settings.model_copy(update={"site": settings.site.model_copy(update={"subscribe": subscribe})})
    settings.paths.profiles_dir.mkdir(parents=True, exist_ok=True)
    (settings.paths.profiles_dir / "ada.toml").write_text(
        'email = "ada@example.org"\n[interests]\nkeywords = ["quantization"]\n'
    )
    return make_app(settings)


def sign_up(client: TestClient, address: str, keywords: str = "mixture of experts, FP8 training") -> object:
    page = client.get("/subscribe")
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    return client.post("/subscribe", data={"nonce": nonce, "email": address, "keywords": keywords})


def link_in(raw: bytes) -> str:
    msg = email.message_from_bytes(raw, policy=policy.default)
    body = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    return re.search(r"http://localhost:8080(/subscribe/confirm/\S+)", body).group(1)  # type: ignore[union-attr]


def test_double_opt_in_creates_the_profile_only_after_the_click(tmp_path: Path, smtp: SMTPServer) -> None:
    with app_for(tmp_path, smtp) as app:
        client = TestClient(create_web_app(app), base_url="http://localhost:8080")
        r = sign_up(client, "Grace.Hopper@example.org")
        assert r.status_code == 200 and "Check your inbox" in r.text  # type: ignore[attr-defined]
        folder = app.settings.paths.profiles_dir
        assert sorted(p.name for p in folder.iterdir()) == ["ada.toml"], "nothing before the confirmation"
        (raw,) = smtp.messages
        url = link_in(raw)
        assert client.get(url).status_code == 200 and len(list(folder.iterdir())) == 1, "a GET creates nothing"
        page = client.get(url).text
        nonce = re.search(r'name="nonce" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        assert client.post(url, data={"nonce": nonce}).status_code == 200
        created = folder / "grace-hopper.toml"
        profile = profile_files.load_profile(created)
        assert profile.email == "Grace.Hopper@example.org"
        assert [k.text for k in profile.interests.keywords] == ["mixture of experts", "FP8 training"]
        assert client.post(url, data={"nonce": nonce}).status_code == 200
        assert len(list(folder.iterdir())) == 2, "confirming twice creates one reader"


def test_the_form_never_reveals_who_reads_the_digest(tmp_path: Path, smtp: SMTPServer) -> None:
    with app_for(tmp_path, smtp) as app:
        client = TestClient(create_web_app(app), base_url="http://localhost:8080")
        known = sign_up(client, "ADA@example.org")
        new = sign_up(client, "bob@example.org")
        shown = [re.sub(r"\S+@example\.org", "ADDRESS", r.text) for r in (known, new)]  # type: ignore[attr-defined]
        assert shown[0] == shown[1] and known.status_code == new.status_code == 200  # type: ignore[attr-defined]
        recipients = [email.message_from_bytes(m, policy=policy.default)["To"] for m in smtp.messages]
        assert recipients == ["bob@example.org"], "a reader gets no confirmation mail"


def test_sign_ups_are_rate_limited_and_off_by_default(tmp_path: Path, smtp: SMTPServer) -> None:
    from newsletter.web import SUBSCRIBE_LIMIT

    with app_for(tmp_path, smtp) as app:
        client = TestClient(create_web_app(app), base_url="http://localhost:8080")
        codes = [sign_up(client, f"r{i}@example.org").status_code for i in range(SUBSCRIBE_LIMIT + 1)]  # type: ignore[attr-defined]
        assert codes[-1] == 429 and set(codes[:-1]) == {200}
        page = client.get("/subscribe").text
        nonce = re.search(r'name="nonce" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        r = client.post("/subscribe", data={"nonce": nonce, "email": "x@example.org", "keywords": "x"},
                        headers={"Origin": "https://evil.example.com"})  # fmt: skip
        assert r.status_code == 403
    with app_for(tmp_path / "off", smtp, subscribe=False) as app:
        client = TestClient(create_web_app(app), base_url="http://localhost:8080")
        assert client.get("/subscribe").status_code == 404
