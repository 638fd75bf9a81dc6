"""The engine seam: what the runner asks of a diffusion engine, and how one is opened.

An engine turns one `EngineCall` into frames: a uint8 array shaped (frames, height, width, 3).
Engines run one call at a time (the runner is single-threaded, one GPU per runner); the heavy
packages are imported by `open_engine`, never by importing this package.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from videoproc.generate.models import ModelRef

StepCallback = Callable[[int, int], None]  # (steps done, steps in total)


class EngineError(RuntimeError):
    """The engine could not be opened (missing package, bad model folder, no GPU)."""


@dataclass(frozen=True, kw_only=True)
class EngineCall:
    """One generation. Sizes in pixels; `image` is a PIL image for image-to-video, else None."""

    prompt: str
    negative_prompt: str | None
    width: int
    height: int
    num_frames: int
    fps: int
    num_inference_steps: int
    guidance_scale: float
    seed: int
    image: Any = None


class Engine(Protocol):
    name: str
    device: str
    dtype: str

    def versions(self) -> dict[str, str]:
        """Package name -> version of everything that shaped the pixels."""

    def generate(self, call: EngineCall, *, on_step: StepCallback | None = None) -> Any:
        """Frames as a uint8 numpy array (T, H, W, 3)."""


def open_engine(kind: str, *, model: ModelRef, device: str, dtype: str) -> Engine:
    """Load `model` into the engine `kind` ('diffusers' or 'tensorrt-llm') on `device`."""
    if kind == "tensorrt-llm":
        from videoproc.generate.engines.trtllm_engine import TensorrtLlmEngine

        return TensorrtLlmEngine(model=model, device=device, dtype=dtype)
    from videoproc.generate.engines.diffusers_engine import DiffusersEngine

    return DiffusersEngine(model=model, device=device, dtype=dtype)


def resolve_device(kind: str, device: str) -> str:
    """'auto' becomes 'cuda' when torch sees a GPU, else 'cpu'; 'cuda' without a GPU is an error."""
    if kind == "tensorrt-llm":
        return "cuda"
    cuda = _cuda_available()
    if device == "cuda" and not cuda:
        raise EngineError("device 'cuda' was asked for but torch sees no CUDA GPU; use --device auto or cpu")
    return device if device != "auto" else ("cuda" if cuda else "cpu")


def resolve_dtype(dtype: str, device: str) -> str:
    """'auto' is bfloat16 on a GPU (Dynamo's default) and float32 on a CPU, where bfloat16 is slow."""
    if dtype != "auto":
        return dtype
    return "bfloat16" if device == "cuda" else "float32"


def to_uint8_frames(video: Any) -> Any:
    """Normalise an engine's video to uint8 (T, H, W, 3): accepts torch or numpy, a leading batch
    axis of 1, channels-first (T, 3, H, W), and floats in [0, 1]."""
    import numpy as np

    array = video.detach().cpu().float().numpy() if hasattr(video, "detach") else np.asarray(video)
    if array.ndim == 5 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 4:
        raise ValueError(f"engine returned a video of shape {array.shape}; expected (frames, height, width, 3)")
    if array.shape[-1] != 3 and array.shape[1] == 3:
        array = array.transpose(0, 2, 3, 1)
    if array.dtype != np.uint8:
        array = np.clip(np.rint(array.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())
