"""The golden-image comparison itself (tests/screens.py): it passes what it should and fails what it must.

The pictures are the committed goldens blown back up to screenshot size, then
changed the way a broken template or a different renderer would change them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import screens
from PIL import Image, ImageChops, ImageDraw, ImageFilter
from screens import GOLDEN, check_screenshot, compare


def full_size(name: str) -> Image.Image:
    """A golden as the screenshot it was made from would look (twice the size, RGB)."""
    with Image.open(GOLDEN / f"{name}.png") as golden:
        return golden.convert("RGB").resize((golden.width * 2, golden.height * 2), Image.Resampling.NEAREST)


def golden(name: str) -> Image.Image:
    with Image.open(GOLDEN / f"{name}.png") as image:
        image.load()
        return image


@pytest.mark.parametrize("name", ["email-600", "email-375-dark", "manage-1280", "manage-375"])
def test_every_golden_is_small_and_matches_itself(name: str) -> None:
    path = GOLDEN / f"{name}.png"
    assert path.stat().st_size < 40_000, "goldens stay small: half size, 16 greys"
    diff = compare(full_size(name), golden(name))
    assert diff.ok and diff.differing == 0.0


def test_noise_blur_and_a_small_mark_pass() -> None:
    shot = full_size("email-600")
    noisy = np.asarray(shot).astype(np.int16) + np.random.default_rng(0).integers(-20, 21, (*shot.size[::-1], 1))
    marked = shot.copy()
    ImageDraw.Draw(marked).rectangle((100, 500, 140, 510), fill="red")  # a 40 x 10 px blot
    for changed in (
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)),
        shot.filter(ImageFilter.GaussianBlur(1)),  # other anti-aliasing
        marked,
    ):
        diff = compare(changed, golden("email-600"))
        assert diff.ok, diff.differing


def test_visible_changes_fail() -> None:
    shot = full_size("email-600")
    blanked = shot.copy()
    ImageDraw.Draw(blanked).rectangle((40, 900, 560, 1100), fill="white")  # a card's text gone
    shifted = ImageChops.offset(shot, 0, 2)  # everything moved down 2 px
    for changed, why in (
        (blanked, "a blanked card"),
        (shifted, "a page moved by 2 px"),
        (full_size("email-600-dark"), "the dark palette instead of the light one"),
    ):
        diff = compare(changed, golden("email-600"))
        assert not diff.ok, why
    diff = compare(blanked, golden("email-600"))
    assert diff.differing <= screens.MAX_DIFFERING < diff.worst_tile, "the tiles catch what the whole page dilutes"
    assert 40 <= diff.worst_at[0] <= 560 and 900 - 64 <= diff.worst_at[1] <= 1100, diff.worst_at
    taller = shot.crop((0, 0, shot.width, shot.height + 40))
    assert not compare(taller, golden("email-600")).ok, "another height is another layout"


def test_a_failure_says_where_the_new_screenshot_is_and_how_to_update(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(screens, "GOLDEN", tmp_path / "golden")
    shot = tmp_path / "manage-375.png"
    full_size("manage-375").save(shot)
    with pytest.raises(AssertionError, match="no golden image"):
        check_screenshot(shot, "manage-375")
    monkeypatch.setenv(screens.UPDATE, "1")
    with pytest.warns(UserWarning, match="rewritten"):
        check_screenshot(shot, "manage-375")
    assert (tmp_path / "golden" / "manage-375.png").read_bytes() == (GOLDEN / "manage-375.png").read_bytes()
    monkeypatch.delenv(screens.UPDATE)
    check_screenshot(shot, "manage-375")  # the same picture passes
    changed = Image.open(shot)
    ImageDraw.Draw(changed).rectangle((0, 200, 375, 400), fill="black")
    changed.save(shot)
    with pytest.raises(AssertionError) as failed:
        check_screenshot(shot, "manage-375")
    message = str(failed.value)
    assert str(shot) in message and "NEWSLETTER_UPDATE_GOLDEN=1" in message, message
    marked = np.asarray(Image.open(tmp_path / "manage-375.diff.png").convert("RGB"))
    assert ((marked == (255, 0, 255)).all(axis=2)).sum() > 1000, "the differences are marked"
