"""The engine seam: what the runner asks of a diffusion engine, and how one is opened.

An engine turns one `EngineCall` into frames: a uint8 array shaped (frames, height, width, 3).
Engines run one call at a time (the runner is single-threaded, one GPU per runner); the heavy
packages are imported by `open_engine`, never by importing this package. The call, the errors and
the Engine protocol live in engines.base, which the engines import; they are re-exported here.
"""

from __future__ import annotations

from videoproc.generate.engines.base import Engine, EngineCall, EngineError, StepCallback, to_uint8_frames
from videoproc.generate.models import ModelRef

__all__ = [
    "Engine", "EngineCall", "EngineError", "StepCallback", "open_engine", "resolve_device", "resolve_dtype",
    "to_uint8_frames",
]


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


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())
