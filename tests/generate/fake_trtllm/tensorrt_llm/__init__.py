"""A stand-in for TensorRT-LLM's public VisualGen API, for tests on machines without it.

It mimics the shape of `from tensorrt_llm import VisualGen, VisualGenArgs, VisualGenParams`:
pydantic-style `model_fields`, `VisualGen(model=..., args=...)`, `generate(inputs=..., params=...)`
returning an output with `.video` (a uint8 torch tensor, 1 x T x H x W x 3) and `.error`. The
video is a deterministic function of the seed and the prompt. `CALLS` records every call.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__version__ = "1.4.0rc-fake"
CALLS: list[dict] = []
IMAGE_FIELD = "image"  # tests switch this to mimic older releases


class VisualGenArgs:
    model_fields = {"dtype": None, "device": None}

    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)


class VisualGenParams:
    model_fields = dict.fromkeys(["height", "width", "num_frames", "frame_rate", "num_inference_steps",
                                  "guidance_scale", "seed", "negative_prompt", "extra_params"])

    def __init__(self, **kwargs: Any) -> None:
        allowed = set(type(self).model_fields) | {IMAGE_FIELD}
        unknown = set(kwargs) - allowed
        if unknown:
            raise TypeError(f"unexpected fields {sorted(unknown)}")
        self.__dict__.update(kwargs)


# Keep the image field visible to callers that inspect model_fields.
def _refresh_fields() -> None:
    for name in ("image", "input_reference", "image_reference"):
        VisualGenParams.model_fields.pop(name, None)
    VisualGenParams.model_fields[IMAGE_FIELD] = None


@dataclass
class VisualGenOutput:
    video: Any = None
    error: str | None = None


@dataclass
class VisualGen:
    model: str
    args: Any = None
    closed: bool = field(default=False)

    def generate(self, inputs: Any, params: VisualGenParams) -> VisualGenOutput:
        import torch

        prompt = inputs["prompt"] if isinstance(inputs, dict) else inputs
        CALLS.append({"model": self.model, "inputs": inputs, "params": dict(params.__dict__)})
        if "FAIL" in prompt:
            return VisualGenOutput(error="CUDA out of memory (fake)")
        digest = hashlib.sha256(f"{prompt}|{params.seed}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        video = rng.integers(0, 256, (1, params.num_frames, params.height, params.width, 3), dtype=np.uint8)
        return VisualGenOutput(video=torch.from_numpy(video))

    def shutdown(self) -> None:
        self.closed = True


_refresh_fields()
