"""What `--model` names, resolved from `model_index.json` without importing diffusers.

A model serves text-to-video (`t2v`), image-to-video (`i2v`) or, for the built-in `tiny-random`, both.
Its `ModelSpec` holds the defaults a request falls back on and the shape constraints it must meet.
"""

from __future__ import annotations

import json
import os
import posixpath
from dataclasses import dataclass, replace
from typing import Literal

from videoproc.common.errors import OptionsError

Task = Literal["t2v", "i2v"]
TINY_RANDOM = "tiny-random"


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """Request defaults and constraints of a model family.

    Sides must be multiples of `size_multiple` pixels; frame counts of the form `frame_step*k + 1`.
    """

    family: str
    default_width: int
    default_height: int
    default_num_frames: int
    default_steps: int
    default_guidance: float
    size_multiple: int
    frame_step: int


# Dynamo's defaults for Wan2.1-T2V-1.3B; diffusers' Wan raises on sides not divisible by 16 and
# silently rounds frames to 4k+1 (the VAE compresses time by 4), so both are enforced up front.
WAN = ModelSpec(
    family="wan", default_width=832, default_height=480, default_num_frames=81,
    default_steps=50, default_guidance=5.0, size_multiple=16, frame_step=4,
)
# A small default so that a request without a size finishes in about a second on a CPU.
TINY = replace(WAN, family="wan (tiny-random)", default_width=64, default_height=64,
               default_num_frames=17, default_steps=4)
# Unknown pipelines: only what yuv420p needs (even sides); Dynamo's defaults otherwise.
GENERIC = replace(WAN, family="generic", size_multiple=2, frame_step=1)


@dataclass(frozen=True, kw_only=True)
class ModelRef:
    """A model as the run sees it: `name` goes into records, `path` is None for `tiny-random`."""

    name: str
    path: str | None
    class_name: str
    tasks: frozenset[str]
    spec: ModelSpec

    @property
    def is_demo(self) -> bool:
        return self.path is None


def resolve_model(value: str) -> ModelRef:
    """`tiny-random`, or a diffusers-format folder holding `model_index.json`."""
    if value == TINY_RANDOM:
        return ModelRef(name=TINY_RANDOM, path=None, class_name="WanPipeline+WanImageToVideoPipeline",
                        tasks=frozenset({"t2v", "i2v"}), spec=TINY)
    index = _read_model_index(value)
    class_name = str(index.get("_class_name", ""))
    return ModelRef(name=posixpath.basename(value.rstrip("/")) or value, path=value, class_name=class_name,
                    tasks=frozenset({_task_of(class_name)}), spec=_spec_of(class_name))


def resolve_models(values: tuple[str, ...]) -> tuple[ModelRef, ...]:
    models = tuple(resolve_model(v) for v in values)
    names = [m.name for m in models]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise OptionsError(f"two --model values share the name {duplicates[0]!r}; requests pick models by "
                           "folder name, so give each model folder a distinct name")
    return models


def _read_model_index(path: str) -> dict:
    index_path = os.path.join(path, "model_index.json")
    if not os.path.isfile(index_path):
        raise OptionsError(f"model {path!r} is not a diffusers-format folder (no model_index.json there); "
                           f"pass a folder made by save_pretrained, or --model {TINY_RANDOM}")
    with open(index_path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as exc:
            raise OptionsError(f"model {path!r}: {index_path} is not valid JSON ({exc}); "
                               "save the model again with save_pretrained") from None


def _task_of(class_name: str) -> Task:
    return "i2v" if ("ImageToVideo" in class_name or "I2V" in class_name) else "t2v"


def _spec_of(class_name: str) -> ModelSpec:
    return WAN if class_name.startswith("Wan") else GENERIC
