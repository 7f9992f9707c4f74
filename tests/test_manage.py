"""The "manage your digest" page (issue 18): edit the profile from the email, see this week's digest, save safely."""

from __future__ import annotations

from starlette.testclient import TestClient

from newsletter import manage
from newsletter import profiles as profile_files
from newsletter.pipeline import App


def fields_of(page: str) -> dict[str, str]:
    """What a browser would submit from the page as it is: inputs, textareas, the selected option, ticked boxes."""
    from html.parser import HTMLParser

    out: dict[str, str] = {}

    class Form(HTMLParser):
        textarea: str | None = None
        select: str | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = {k: v or "" for k, v in attrs}
            if (tag == "input" and a.get("type") != "checkbox" and "name" in a) or (tag == "input" and "checked" in a):
                out[a["name"]] = a.get("value", "")
            elif tag == "textarea":
                self.textarea = a["name"]
                out[self.textarea] = ""
            elif tag == "select":
                self.select = a["name"]
            elif tag == "option" and self.select and "selected" in a:
                out[self.select] = a["value"]

        def handle_endtag(self, tag: str) -> None:
            self.textarea = None if tag == "textarea" else self.textarea
            self.select = None if tag == "select" else self.select

        def handle_data(self, data: str) -> None:
            if self.textarea:
                out[self.textarea] += data

    Form(convert_charrefs=True).feed(page)
    return out


def test_the_form_shows_the_profile_and_this_weeks_digest(app: App, client: TestClient) -> None:
    page = client.get(f"/manage/{app.tokens.manage('ada')}")
    assert page.status_code == 200
    assert "to <strong>ada@example.org</strong>" in page.text
    fields = fields_of(page.text)
    assert fields["keywords"].splitlines() == [
        "post-training quantization",
        "FP8 training",
        "low-bit | 1.5",
        "quantization",
    ]
    assert fields["frequency"] == "daily" and fields["send_at"] == "07:30" and fields["max_items"] == "10"
    assert "This week, with these settings" in page.text and "<ol>" in page.text


def test_saving_writes_the_file_keeping_comments_and_validates_like_profiles_check(
    app: App, client: TestClient
) -> None:
    path = app.settings.paths.profiles_dir / "ada.toml"
    url = f"/manage/{app.tokens.manage('ada')}"
    fields = fields_of(client.get(url).text)
    fields.update(keywords="mixture of experts | 2\nexpert routing", max_items="5", frequency="weekly:fri", do="save")
    r = client.post(url, data=fields)
    assert r.status_code == 200 and "Saved." in r.text
    text = path.read_text()
    assert text.startswith("# Ada's profile: edit this file"), "comments are kept"
    assert "# local time, HH:MM" in text
    p = profile_files.load_profile(path)
    assert [(k.text, k.weight) for k in p.interests.keywords] == [("mixture of experts", 2.0), ("expert routing", 1.0)]
    assert p.max_items == 5 and p.frequency == "weekly:fri"
    bad = fields_of(client.get(url).text)
    bad.update(frequency="weekly:fri", categories="CS.CL", timezone="BST", do="save")
    r = client.post(url, data=bad)
    assert r.status_code == 422 and "Nothing was saved" in r.text
    assert "did you mean &#34;cs.CL&#34;?" in r.text and "Europe/London" in r.text
    assert profile_files.load_profile(path).interests.categories == ("cs.LG",), "the file is untouched"


def test_saving_refuses_to_overwrite_an_edit_made_since_the_page_was_opened(app: App, client: TestClient) -> None:
    path = app.settings.paths.profiles_dir / "ada.toml"
    url = f"/manage/{app.tokens.manage('ada')}"
    fields = fields_of(client.get(url).text)
    path.write_text(path.read_text().replace("max_items = 10", "max_items = 12"))  # edited by hand meanwhile
    r = client.post(url, data={**fields, "max_items": "3", "do": "save"})
    assert r.status_code == 409 and "changed since this page was opened" in r.text
    assert profile_files.load_profile(path).max_items == 12


def test_preview_without_saving_and_the_live_fragment_change_nothing(app: App, client: TestClient) -> None:
    path = app.settings.paths.profiles_dir / "ada.toml"
    before = path.read_text()
    url = f"/manage/{app.tokens.manage('ada')}"
    fields = fields_of(client.get(url).text)
    r = client.post(url, data={**fields, "keywords": "mixture of experts", "do": "preview"})
    assert r.status_code == 200 and "mixture of experts" in r.text and "Saved." not in r.text
    frag = client.post(url, data={**fields, "keywords": "mixture of experts", "do": "fragment"})
    assert frag.status_code == 200 and frag.text.lstrip().startswith("<h2>This week")
    assert "&#34;mixture of experts&#34;" in frag.text, "the preview's reasons use the unsaved keyword"
    assert path.read_text() == before


def test_posts_need_a_recent_page_and_our_origin(app: App, client: TestClient) -> None:
    url = f"/manage/{app.tokens.manage('ada')}"
    assert client.post(url, data={"do": "save", "max_items": "1"}).status_code == 400
    fields = fields_of(client.get(url).text)
    r = client.post(url, data={**fields, "do": "save"}, headers={"Origin": "https://evil.example.com"})
    assert r.status_code == 403
    assert client.get("/manage/forged").status_code == 400


def test_arxiv_links_become_ids() -> None:
    text = 'email = "a@example.org"\n[interests]\nkeywords = ["x"]\n'
    out = manage.apply_form(text, {"papers": "https://arxiv.org/abs/2402.15627v2\n2401.01234", "keywords": "x"})
    assert 'papers = ["2402.15627v2", "2401.01234"]' in out
