"""The contact sheet: one strip per row, its frames side by side under a label.

The pixel layout is fixed so that a strip can be checked against the stored frames exactly:
  - strip s starts at y = the previous strip's bottom + STRIP_GAP (the first at MARGIN); its label
    band is LABEL_H pixels high, the frames follow, then a CAPTION_H band of per-frame timestamps;
  - frame j of a strip is pasted with its top-left corner at x = MARGIN + j * (w + GAP), where w is
    the pasted width;
  - a frame is pasted unscaled when both sides are at most `max_side`; otherwise it is subsampled by
    the integer step k = ceil(max(H, W) / max_side), keeping every k-th pixel: frame[::k, ::k];
  - a row with more than `max_frames` frames shows `pick(T, max_frames)` of them, evenly spaced.
`Sheet.placements` records where each frame went, for tests and for tools that crop strips back out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MARGIN = 8
GAP = 4
STRIP_GAP = 8
LABEL_H = 14
CAPTION_H = 13
BACKGROUND = (24, 24, 24)
TEXT = (235, 235, 235)
DIM_TEXT = (170, 170, 170)


@dataclass(frozen=True, kw_only=True)
class Strip:
    """One row: its label, its frames (each (H, W, 3) uint8) and a caption per frame."""

    label: str
    frames: tuple[np.ndarray, ...]
    captions: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Placement:
    """Frame `frame` of strip `strip`, subsampled by `step`, pasted with its top-left at (x, y)."""

    strip: int
    frame: int
    x: int
    y: int
    step: int


@dataclass(frozen=True, kw_only=True)
class Sheet:
    image: Image.Image
    placements: tuple[Placement, ...]


def pick(count: int, limit: int) -> list[int]:
    """`limit` indices spread evenly over range(count), first and last included; all when fewer."""
    if count <= limit:
        return list(range(count))
    if limit == 1:
        return [0]
    return [round(i * (count - 1) / (limit - 1)) for i in range(limit)]


def subsample_step(height: int, width: int, max_side: int) -> int:
    """The integer step that brings the longer side to at most `max_side` pixels (1: unscaled)."""
    return max(1, math.ceil(max(height, width) / max_side))


def shrink(frame: np.ndarray, max_side: int) -> np.ndarray:
    """The frame as pasted: every k-th pixel of every k-th line, k = subsample_step(...)."""
    step = subsample_step(frame.shape[0], frame.shape[1], max_side)
    return frame[::step, ::step]


def latin1(text: str) -> str:
    """The text with what the bitmap font cannot draw (outside Latin-1) shown as '?'."""
    return text.encode("latin-1", "replace").decode("latin-1")


def render(strips: list[Strip], *, max_side: int = 128, empty_note: str = "no rows to show") -> Sheet:
    """Draw the strips, top to bottom, on one RGB image (a note instead when there are none)."""
    font = ImageFont.load_default_imagefont()
    strips = [Strip(label=latin1(s.label), frames=s.frames, captions=tuple(map(latin1, s.captions))) for s in strips]
    shown = [[shrink(f, max_side) for f in strip.frames] for strip in strips]
    tops, height = _layout_rows(shown)
    image = Image.new("RGB", (_sheet_width(strips, shown, font), height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    if not strips:
        draw.text((MARGIN, MARGIN + 1), empty_note, fill=TEXT, font=font)
    placements = []
    for index, (strip, frames) in enumerate(zip(strips, shown, strict=True)):
        placements += _draw_strip(draw, image, font, index=index, strip=strip, frames=frames, top=tops[index],
                                  max_side=max_side)
    return Sheet(image=image, placements=tuple(placements))


def _draw_strip(draw, image, font, *, index: int, strip: Strip, frames: list[np.ndarray], top: int,
                max_side: int) -> list[Placement]:
    draw.text((MARGIN, top + 1), strip.label, fill=TEXT, font=font)
    x, y = MARGIN, top + LABEL_H
    placements = []
    for j, frame in enumerate(frames):
        image.paste(Image.fromarray(np.ascontiguousarray(frame), "RGB"), (x, y))
        placements.append(Placement(strip=index, frame=j, x=x, y=y,
                                    step=subsample_step(*strip.frames[j].shape[:2], max_side)))
        caption = strip.captions[j] if j < len(strip.captions) else ""
        _caption(draw, font, caption, x=x, y=y + frame.shape[0] + 1, width=frame.shape[1])
        x += frame.shape[1] + GAP
    return placements


def _caption(draw, font, text: str, *, x: int, y: int, width: int) -> None:
    # A caption wider than its frame would run into the next one's: shorten it, else drop it.
    for candidate in (text, text.rstrip("s"), text.split(".")[0]):
        if candidate and font.getlength(candidate) <= width + GAP:
            draw.text((x, y), candidate, fill=DIM_TEXT, font=font)
            return


def _layout_rows(shown: list[list[np.ndarray]]) -> tuple[list[int], int]:
    """The top of each strip, and the sheet's height."""
    tops, y = [], MARGIN
    for frames in shown:
        tops.append(y)
        y += LABEL_H + max((f.shape[0] for f in frames), default=0) + CAPTION_H + STRIP_GAP
    return tops, (y - STRIP_GAP + MARGIN) if shown else 2 * MARGIN + LABEL_H


def _sheet_width(strips: list[Strip], shown: list[list[np.ndarray]], font) -> int:
    frames = [sum(f.shape[1] + GAP for f in row) - GAP for row in shown]
    labels = [math.ceil(font.getlength(strip.label)) for strip in strips]
    return 2 * MARGIN + max([*frames, *labels, 160])
