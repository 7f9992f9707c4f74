"""The installed package carries what it needs at run time: templates and sample data."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import newsletter
from newsletter.render import default_templates_dir

CHECKOUT = Path(__file__).resolve().parent.parent


def test_default_templates_are_found() -> None:
    folder = default_templates_dir()
    assert {"digest.mjml", "digest.txt", "feed.rss.xml", "feed.atom.xml"} <= {p.name for p in folder.iterdir()}


def test_a_wheel_install_ships_the_templates_inside_the_package() -> None:
    """Under CI the suite runs against `pip install .` (not editable): templates must be in the wheel."""
    installed = Path(newsletter.__file__).resolve().parent
    if installed.parent == CHECKOUT:  # an editable/dev install reads the checkout's templates/
        assert (CHECKOUT / "templates" / "digest.mjml").exists()
        return
    packaged = Path(str(resources.files("newsletter") / "templates"))
    assert (packaged / "digest.mjml").exists()
    assert default_templates_dir() == packaged


def test_sample_feeds_and_profiles_are_packaged() -> None:
    samples = resources.files("newsletter") / "samples"
    assert (samples / "arxiv_cs.rss").is_file() and (samples / "hf_daily_papers.json").is_file()
    assert {"ada.toml", "grace.toml", "alan.toml"} <= {p.name for p in (samples / "profiles").iterdir()}
