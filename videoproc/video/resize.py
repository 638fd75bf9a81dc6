"""Resize geometry (pure) and the one-pass frame conversion that applies it.

The decoder's own pixel conversion (swscale) scales and converts to RGB in a single call, which is
both the cheapest path and the reference: swscale's BILINEAR widens its filter when downscaling,
so it antialiases like the FFmpeg CLI's `scale=W:H:flags=bilinear`, where OpenCV's INTER_LINEAR
differs by up to hundreds of levels.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from videoproc.video.options import ResizeMode


@dataclass(frozen=True, kw_only=True)
class ResizePlan:
    """How a displayed picture of src size becomes the output picture, all sizes in pixels.

    The picture is scaled to scale_width x scale_height, then cropped at (crop_left, crop_top)
    (crop mode) or placed at (pad_left, pad_top) on a black canvas (pad mode).
    """

    scale_width: int
    scale_height: int
    out_width: int
    out_height: int
    crop_left: int = 0
    crop_top: int = 0
    pad_left: int = 0
    pad_top: int = 0


def plan_resize(
    src_width: int, src_height: int, *, size: tuple[int, int] | None, mode: ResizeMode
) -> ResizePlan:
    """Geometry for one of the modes; `size` is (width, height), None keeps the source size."""
    if size is None:
        return ResizePlan(
            scale_width=src_width, scale_height=src_height, out_width=src_width, out_height=src_height
        )
    width, height = size
    if mode == "stretch":
        return ResizePlan(scale_width=width, scale_height=height, out_width=width, out_height=height)
    if mode == "crop":
        return _plan_crop(src_width, src_height, width, height)
    return _plan_pad(src_width, src_height, width, height)


def _plan_crop(src_w: int, src_h: int, width: int, height: int) -> ResizePlan:
    scale = max(width / src_w, height / src_h)
    scaled_w = max(width, round(src_w * scale))
    scaled_h = max(height, round(src_h * scale))
    return ResizePlan(
        scale_width=scaled_w,
        scale_height=scaled_h,
        out_width=width,
        out_height=height,
        crop_left=(scaled_w - width) // 2,
        crop_top=(scaled_h - height) // 2,
    )


def _plan_pad(src_w: int, src_h: int, width: int, height: int) -> ResizePlan:
    scale = min(width / src_w, height / src_h)
    scaled_w = min(width, max(1, round(src_w * scale)))
    scaled_h = min(height, max(1, round(src_h * scale)))
    return ResizePlan(
        scale_width=scaled_w,
        scale_height=scaled_h,
        out_width=width,
        out_height=height,
        pad_left=(width - scaled_w) // 2,
        pad_top=(height - scaled_h) // 2,
    )


def displayed_size(width: int, height: int, rotation: int) -> tuple[int, int]:
    """The picture's size as shown: a quarter turn swaps the sides."""
    return (height, width) if rotation % 180 == 90 else (width, height)


# Filters that turn a picture clockwise by the key, in degrees.
_TURNS: dict[int, list[tuple[str, str]]] = {
    0: [],
    90: [("transpose", "clock")],
    180: [("hflip", ""), ("vflip", "")],
    270: [("transpose", "cclock")],
}


_GRAPHS_PER_CONVERTER = 4
_SHARED_CONVERTERS = 8


def _graph_key(frame) -> tuple:
    """Every property of a frame that a graph fixes or remembers: a graph only ever sees frames
    that agree on all of them.

    A graph keeps state from earlier frames: a frame whose matrix and range are unspecified, after
    a BT.709 one, is still converted as BT.709 (up to 40 levels off), where a fresh graph reads it
    as BT.601 limited, like the FFmpeg CLI. Primaries and transfer are in the key although RGB
    output does not use them today. Chroma siting is the one colour property PyAV 18 does not
    expose; the graph reads it from each frame (checked with left, centre and top-left siting,
    tagged and untagged, each after each), so it needs no key.
    """
    return (
        frame.width, frame.height, frame.format.name,
        frame.colorspace, frame.color_range, frame.color_primaries, frame.color_trc,
    )


class FrameConverter:
    """Turns decoded frames into uint8 RGB arrays of the planned output size.

    `rotation` is the clockwise turn (0, 90, 180, 270) that displays the picture upright. It is
    applied before scaling, as the FFmpeg CLI does: with subsampled chroma, scaling then turning
    gives a different picture (22 dB from the CLI's on a saturated test pattern).

    Scaling runs through FFmpeg's own `scale` filter rather than a bare swscale call: the filter
    passes each frame's chroma siting to swscale, as the FFmpeg CLI does, where a bare call assumes
    left-sited chroma. On saturated colour edges that difference alone costs 5-15 dB against the
    CLI's `scale=W:H:flags=bilinear`; through the filter the two are bit-identical, at the same cost.
    """

    def __init__(self, plan: ResizePlan, *, rotation: int, threads: int = 1) -> None:
        self.plan = plan
        self.rotation = round(rotation / 90) % 4 * 90  # display matrices in the wild are quarter turns
        self.threads = threads
        self._graphs: dict[tuple, Any] = {}

    def __call__(self, frame) -> np.ndarray:
        return self._place(self._scale(frame))

    def _scale(self, frame) -> np.ndarray:
        key = _graph_key(frame)
        # Taken out while in use: a graph that raised may still hold a frame it never gave back,
        # so it is only put back after a clean push and pull.
        graph = self._graphs.pop(key, None) or self._build_graph(frame)
        graph.vpush(frame)
        rgb = graph.vpull().to_ndarray()
        self._keep(key, graph)
        return rgb

    def _keep(self, key: tuple, graph) -> None:
        # One graph per input description, most recent last: a stream that changes size mid-way, or
        # a worker's next video of another size or colour, gets its own graph without rebuilding
        # the others.
        self._graphs[key] = graph
        while len(self._graphs) > _GRAPHS_PER_CONVERTER:
            del self._graphs[next(iter(self._graphs))]

    def _build_graph(self, frame):
        import av

        graph = av.filter.Graph()
        # 0 lets FFmpeg pick; a worker pool that fills the cores asks for 1 thread per decoder.
        graph.threads = self.threads
        source = graph.add_buffer(
            width=frame.width, height=frame.height, format=frame.format,
            time_base=frame.time_base or Fraction(1, 1000),  # only the filter setup reads it
        )
        chain = [graph.add(name, args) for name, args in _TURNS[self.rotation]]
        chain.append(graph.add("scale", f"{self.plan.scale_width}:{self.plan.scale_height}:flags=bilinear"))
        chain.append(graph.add("format", "rgb24"))
        chain.append(graph.add("buffersink"))
        for upstream, downstream in zip([source, *chain], chain, strict=False):
            upstream.link_to(downstream)
        graph.configure()
        return graph

    def _place(self, rgb: np.ndarray) -> np.ndarray:
        plan = self.plan
        if (plan.scale_width, plan.scale_height) == (plan.out_width, plan.out_height):
            return rgb
        if plan.scale_width >= plan.out_width and plan.scale_height >= plan.out_height:
            top, left = plan.crop_top, plan.crop_left
            return rgb[top : top + plan.out_height, left : left + plan.out_width]
        canvas = np.zeros((plan.out_height, plan.out_width, 3), dtype=np.uint8)
        top, left = plan.pad_top, plan.pad_left
        canvas[top : top + plan.scale_height, left : left + plan.scale_width] = rgb
        return canvas


@functools.lru_cache(maxsize=_SHARED_CONVERTERS)
def shared_converter(plan: ResizePlan, *, rotation: int, threads: int) -> FrameConverter:
    """A converter kept for the life of the process, for every video with this plan and rotation.

    Building FFmpeg's filter graph costs about as much as converting one frame (0.15 ms at 224x224
    here), which is a measurable share of a short clip; a worker's videos mostly share their sizes
    and colour descriptions, so a graph is built once per such description and reused. It is not
    enough to key graphs on the geometry: a graph remembers the colour matrix of earlier frames
    (see `_graph_key`), so graphs are keyed on every colour property a frame carries, and a row's
    pixels never depend on what its worker converted before.
    """
    return FrameConverter(plan, rotation=rotation, threads=threads)
