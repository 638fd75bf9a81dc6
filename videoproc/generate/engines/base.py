"""What every engine shares: the call it answers, the errors it raises, the Engine protocol, and
the normalisation of its output frames. Engines import this module; the package's open_engine
imports the engines."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

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
