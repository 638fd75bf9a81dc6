"""The TensorRT-LLM adapter over its public VisualGen API.

TensorRT-LLM's video API has changed shape between pre-releases (a standalone `visual_gen`
prototype, then `tensorrt_llm._torch.visual_gen` pipelines, then the public
`from tensorrt_llm import VisualGen, VisualGenArgs, VisualGenParams`), and its image input has been
called `input_reference`, `image` and `image_reference`. This module targets the public API and keeps
every shape difference in the `_params`, `_inputs` and `_frames` functions below.
"""

from __future__ import annotations

import inspect
import sys
from typing import Any

from videoproc.generate.engines.base import EngineCall, EngineError, StepCallback, to_uint8_frames
from videoproc.generate.models import ModelRef

_IMAGE_NAMES = ("image", "input_reference", "image_reference")  # newest first


class TensorrtLlmEngine:
    """One `VisualGen` instance for one model folder; TensorRT-LLM picks the pipeline class from
    the folder's `model_index.json`."""

    name = "tensorrt-llm"

    def __init__(self, *, model: ModelRef, device: str, dtype: str) -> None:
        if model.path is None:
            raise EngineError(f"the tensorrt-llm engine loads model folders only (got {model.name!r}, which is "
                              "built in memory); use --engine diffusers or pass --model PATH")
        self.model, self.device, self.dtype = model, device, dtype
        self._api = import_tensorrt_llm()
        args = _construct(self._api.VisualGenArgs, dtype=dtype)
        self._generator = self._api.VisualGen(model=model.path, args=args)

    def versions(self) -> dict[str, str]:
        return {"tensorrt_llm": str(getattr(self._api, "__version__", "unknown"))}

    def generate(self, call: EngineCall, *, on_step: StepCallback | None = None) -> Any:
        params = _construct(self._api.VisualGenParams, **_params(call, self._api.VisualGenParams))
        output = self._generator.generate(inputs=_inputs(call, self._api.VisualGenParams), params=params)
        if isinstance(output, list):
            output = output[0]
        if getattr(output, "error", None):
            raise RuntimeError(f"TensorRT-LLM VisualGen failed: {output.error}")
        if on_step is not None:  # VisualGen reports no steps; mark the call done
            on_step(call.num_inference_steps, call.num_inference_steps)
        return _frames(output)

    def close(self) -> None:
        shutdown = getattr(self._generator, "shutdown", None)
        if shutdown is not None:
            shutdown()


def import_tensorrt_llm() -> Any:
    """The `tensorrt_llm` module, or an error naming the extra and what it needs."""
    try:
        import tensorrt_llm
    except ImportError as exc:
        raise EngineError(
            "the tensorrt-llm engine needs TensorRT-LLM, which is not installed: install the optional "
            "extra with pip install 'videoproc[tensorrt-llm]' on a machine with an NVIDIA GPU, CUDA 13 and "
            f"Python 3.10 or 3.12 (this is Python {sys.version_info.major}.{sys.version_info.minor}); "
            "or use --engine diffusers"
        ) from exc
    if not all(hasattr(tensorrt_llm, n) for n in ("VisualGen", "VisualGenArgs", "VisualGenParams")):
        version = getattr(tensorrt_llm, "__version__", "unknown")
        raise EngineError(f"tensorrt_llm {version} has no public VisualGen API (VisualGen, VisualGenArgs, "
                          "VisualGenParams); install a 1.3 or later pre-release, or use --engine diffusers")
    return tensorrt_llm


def _params(call: EngineCall, params_class: Any) -> dict:
    params = dict(height=call.height, width=call.width, num_frames=call.num_frames, frame_rate=call.fps,
                  num_inference_steps=call.num_inference_steps, guidance_scale=call.guidance_scale,
                  seed=call.seed)
    accepted = _field_names(params_class)
    if call.negative_prompt is not None and "negative_prompt" in accepted:
        params["negative_prompt"] = call.negative_prompt
    if call.image is not None:
        name = next((n for n in _IMAGE_NAMES if n in accepted), None)
        if name is None:
            raise RuntimeError(f"this tensorrt_llm's VisualGenParams takes no image ({', '.join(_IMAGE_NAMES)}); "
                               "image-to-video needs a newer TensorRT-LLM or --engine diffusers")
        params[name] = call.image
    return params


def _inputs(call: EngineCall, params_class: Any) -> Any:
    # Versions without negative_prompt in VisualGenParams take it beside the prompt in `inputs`.
    if call.negative_prompt is not None and "negative_prompt" not in _field_names(params_class):
        return {"prompt": call.prompt, "negative_prompt": call.negative_prompt}
    return call.prompt


def _frames(output: Any) -> Any:
    video = getattr(output, "video", None)
    if video is None:
        raise RuntimeError("TensorRT-LLM VisualGen returned no video and no error")
    return to_uint8_frames(video)


def _construct(cls: Any, **kwargs: Any) -> Any:
    accepted = _field_names(cls)
    return cls(**{k: v for k, v in kwargs.items() if k in accepted})


def _field_names(cls: Any) -> set[str]:
    """Constructor keywords of a pydantic model, a dataclass or a plain class."""
    if hasattr(cls, "model_fields"):
        return set(cls.model_fields)
    if hasattr(cls, "__dataclass_fields__"):
        return set(cls.__dataclass_fields__)
    return set(inspect.signature(cls).parameters)
