"""The diffusers engine: a local diffusers-format folder (or `tiny-random`) run one request at a time."""

from __future__ import annotations

from typing import Any

from videoproc.generate.engines.base import EngineCall, EngineError, StepCallback, to_uint8_frames
from videoproc.generate.models import ModelRef

_EXTRA_HINT = "install the generation extra: pip install 'videoproc[generate]'"


class DiffusersEngine:
    """Holds one pipeline per task the model serves, loaded on first use of that task."""

    name = "diffusers"

    def __init__(self, *, model: ModelRef, device: str, dtype: str) -> None:
        self.model, self.device, self.dtype = model, device, dtype
        self._torch = _import("torch")
        self._diffusers = _import("diffusers")
        self._pipelines: dict[str, Any] = {}
        for task in sorted(model.tasks):  # load now: a bad folder is an error before any work
            self._pipeline(task)

    def versions(self) -> dict[str, str]:
        import transformers

        return {"diffusers": self._diffusers.__version__, "torch": self._torch.__version__,
                "transformers": transformers.__version__}

    def generate(self, call: EngineCall, *, on_step: StepCallback | None = None) -> Any:
        pipe = self._pipeline("i2v" if call.image is not None else "t2v")
        kwargs = dict(
            prompt=call.prompt, negative_prompt=call.negative_prompt, height=call.height, width=call.width,
            num_frames=call.num_frames, num_inference_steps=call.num_inference_steps,
            guidance_scale=call.guidance_scale, output_type="np",
            # A CPU generator draws the same noise whatever the device, so a seed means one video.
            generator=self._torch.Generator(device="cpu").manual_seed(call.seed),
            callback_on_step_end=_step_callback(on_step, call.num_inference_steps),
        )
        if call.image is not None:
            kwargs["image"] = call.image
        with self._torch.inference_mode():
            frames = pipe(**kwargs).frames
        return to_uint8_frames(frames)

    def _pipeline(self, task: str) -> Any:
        if task not in self._pipelines:
            pipe = self._build(task) if self.model.is_demo else self._load()
            pipe.set_progress_bar_config(disable=True)
            self._pipelines[task] = pipe.to(self.device)
        return self._pipelines[task]

    def _build(self, task: str) -> Any:
        from videoproc.generate.tiny_model import build_tiny_pipeline

        pipe = build_tiny_pipeline(task)  # built in float32
        return pipe if self.dtype == "float32" else pipe.to(dtype=getattr(self._torch, self.dtype))

    def _load(self) -> Any:
        dtype = getattr(self._torch, self.dtype)
        if self.model.spec.family == "wan" and dtype != self._torch.float32:
            # Wan's VAE loses colour precision in half precision; diffusers' Wan examples keep it float32.
            dtype = {"default": dtype, "vae": self._torch.float32}
        try:
            return self._diffusers.DiffusionPipeline.from_pretrained(self.model.path, dtype=dtype)
        except (OSError, ValueError, ImportError) as exc:
            raise EngineError(f"cannot load model folder {self.model.path!r} with diffusers "
                              f"{self._diffusers.__version__} ({exc}); "
                              "check it was written by save_pretrained") from exc


def _step_callback(on_step: StepCallback | None, total: int):
    def callback(pipe, step, timestep, tensors):
        if on_step is not None:
            on_step(step + 1, total)
        return tensors

    return callback


def _import(name: str) -> Any:
    try:
        return __import__(name)
    except ImportError as exc:
        raise EngineError(f"the diffusers engine needs the package {name!r}, which is not installed; "
                          f"{_EXTRA_HINT}") from exc
