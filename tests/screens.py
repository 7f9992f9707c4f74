"""Screenshots compared against golden images, with a tolerance (issue 18).

A golden is the screenshot reduced to half size (box filter), in 16 shades of
grey (a 4-bit PNG): small enough to commit (7-35 KB), and blind to the
sub-pixel anti-aliasing that changes between font builds.  A new screenshot,
reduced the same way, must have the same size, and of its pixels that differ
by more than ``TOLERANCE`` there may be at most ``MAX_DIFFERING`` over the
whole picture and at most ``MAX_TILE_DIFFERING`` in any ``TILE`` square (so a
change in one place is not diluted by a long page): a moved block, a blanked
card or a light footer in dark mode fails; noise, a slight blur or a re-hinted
glyph does not (tests/test_screens.py shows each).
Grey keeps layout and light/dark, not hue: a colour swapped for one as bright
passes (the browser tests check the palette they care about directly).

``NEWSLETTER_UPDATE_GOLDEN=1`` writes the goldens from the new screenshots
instead of comparing (then commit them, after looking at them).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

GOLDEN = Path(__file__).parent / "golden" / "screens"
UPDATE = "NEWSLETTER_UPDATE_GOLDEN"
SCALE = 2
"""Goldens are kept at 1/SCALE of the screenshot's size."""
BITS = 4
"""Bits of grey kept: 16 shades, 16 apart."""
TOLERANCE = 48
"""A pixel differs when its grey moved more than this (of 255): three shades."""
MAX_DIFFERING = 0.01
"""At most this share of all pixels may differ (a one-pixel shift of the whole page is 3-5 %)."""
TILE = 32
"""Side of the squares checked one by one, in reduced pixels (64 screen pixels)."""
MAX_TILE_DIFFERING = 0.10
"""At most this share of any square's pixels may differ (a blanked card is about 19 %)."""


@dataclass(frozen=True)
class Difference:
    """How a screenshot compares with its golden."""

    size: tuple[int, int]
    golden_size: tuple[int, int]
    differing: float
    """Share of pixels that differ (1.0 when the sizes differ)."""
    worst_tile: float = 1.0
    """Share of pixels that differ in the worst ``TILE`` square."""
    worst_at: tuple[int, int] = (0, 0)
    """Top left corner of that square, in screenshot pixels (x, y)."""
    mask: np.ndarray | None = None
    """Per pixel, whether it differs (same size only)."""

    @property
    def ok(self) -> bool:
        return (
            self.size == self.golden_size and self.differing <= MAX_DIFFERING and self.worst_tile <= MAX_TILE_DIFFERING
        )


def reduce(image: Image.Image) -> Image.Image:
    """What a golden keeps of a screenshot: half size, 16 shades of grey (mode ``L``)."""
    return ImageOps.posterize(image.convert("RGB").reduce(SCALE).convert("L"), BITS)


def save_golden(image: Image.Image, path: Path) -> None:
    """Write a reduced image as a 4-bit palette PNG whose 16 greys are exactly those of :func:`reduce`."""
    step = 256 >> BITS
    shades = Image.frombytes("P", image.size, bytes(v // step for v in image.tobytes()))
    shades.putpalette([v * step for v in range(1 << BITS) for _ in range(3)])
    shades.save(path, optimize=True, bits=BITS)


def compare(shot: Image.Image, golden: Image.Image) -> Difference:
    """*shot* (a full-size screenshot) against *golden* (already reduced)."""
    new = reduce(shot)
    old = golden.convert("L")
    if new.size != old.size:
        return Difference(new.size, old.size, 1.0)
    mask = np.abs(np.asarray(new, dtype=np.int16) - np.asarray(old, dtype=np.int16)) > TOLERANCE
    h, w = mask.shape
    padded = np.zeros((-(-h // TILE) * TILE, -(-w // TILE) * TILE), dtype=bool)
    padded[:h, :w] = mask
    shares = padded.reshape(padded.shape[0] // TILE, TILE, padded.shape[1] // TILE, TILE).mean(axis=(1, 3))
    row, col = np.unravel_index(int(shares.argmax()), shares.shape)
    at = (int(col) * TILE * SCALE, int(row) * TILE * SCALE)
    return Difference(new.size, old.size, float(mask.mean()), float(shares.max()), at, mask)


def check_screenshot(shot: Path, name: str) -> None:
    """Fail unless the screenshot at *shot* matches ``tests/golden/screens/NAME.png`` within the tolerance."""
    golden = GOLDEN / f"{name}.png"
    how = f"if the change is intended, rerun with {UPDATE}=1, look at {golden} and commit it"
    with Image.open(shot) as image:
        if os.environ.get(UPDATE) == "1":
            GOLDEN.mkdir(parents=True, exist_ok=True)
            save_golden(reduce(image), golden)
            warnings.warn(f"golden image {golden.name} rewritten from {shot}", stacklevel=2)
            return
        assert golden.exists(), f"no golden image {golden} for the new screenshot {shot}; {how}"
        with Image.open(golden) as expected:
            diff = compare(image, expected)
            if diff.ok:
                return
            if diff.mask is None:
                raise AssertionError(
                    f"{name}: the screenshot reduces to {diff.size}, its golden is {diff.golden_size} "
                    f"(sizes must match); new screenshot: {shot}; {how}"
                )
            marked = shot.with_name(f"{shot.stem}.diff.png")
            picture = np.asarray(expected.convert("RGB")).copy()
            picture[diff.mask] = (255, 0, 255)
            Image.fromarray(picture).save(marked)
            raise AssertionError(
                f"{name}: {diff.differing:.2%} of pixels differ from the golden by more than {TOLERANCE} grey "
                f"(at most {MAX_DIFFERING:.0%} may), {diff.worst_tile:.0%} in the {TILE * SCALE} px square at "
                f"x, y = {diff.worst_at} (at most {MAX_TILE_DIFFERING:.0%} may); new screenshot: {shot}; "
                f"differences in magenta (half size): {marked}; {how}"
            )
