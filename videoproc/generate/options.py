"""The resolved options of a generation run, validated before any work starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from videoproc.source.options import SourceOptions

from videoproc.common.checks import check_choice
from videoproc.common.errors import OptionsError
from videoproc.common.progress import ProgressMode
from videoproc.common.runlock import DEFAULT_LEASE_S, check_lock_lease

Engine = Literal["diffusers", "tensorrt-llm"]
Device = Literal["auto", "cpu", "cuda"]
Dtype = Literal["auto", "float32", "bfloat16", "float16"]
Fit = Literal["round", "reject"]
Executor = Literal["local", "ray"]

ENGINES: tuple[str, ...] = ("diffusers", "tensorrt-llm")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
DTYPES: tuple[str, ...] = ("auto", "float32", "bfloat16", "float16")
FITS: tuple[str, ...] = ("round", "reject")
EXECUTORS: tuple[str, ...] = ("local", "ray")


@dataclass(frozen=True, kw_only=True)
class Limits:
    """Per-request ceilings that keep one request from exhausting GPU memory.

    `max_width`/`max_height` default to 4096 pixels (Dynamo's limit); `max_frames` to 1025 frames.
    """

    max_width: int = 4096
    max_height: int = 4096
    max_frames: int = 1025

    def __post_init__(self) -> None:
        for name in ("max_width", "max_height", "max_frames"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise OptionsError(f"{name} must be a positive integer (got {value!r}); pass e.g. 4096")


@dataclass(frozen=True, kw_only=True)
class ReferenceRules:
    """Where `input_reference` images may come from and how much of them is read: the source rules
    of preprocess (see SourceOptions), applied in the process that holds the model.

    max_bytes: cap on one image's size in bytes (default 32 MiB), for every scheme.
    timeout: seconds one reference may take to fetch in all (default 60), so a server that drips
    bytes cannot hold the model; connect and per-read timeouts are capped by it too.
    """

    local_root: str | None = None
    allowed_domains: tuple[str, ...] = ()
    allow_private_hosts: tuple[str, ...] = ()
    allowed_prefixes: tuple[str, ...] = ()
    max_bytes: int = 32 * 2**20
    timeout: float = 60.0

    def __post_init__(self) -> None:
        if type(self.max_bytes) is not int or self.max_bytes < 1:
            raise OptionsError(f"max_reference_bytes must be a positive integer (got {self.max_bytes!r}); "
                             "pass e.g. --max-reference-bytes 32MiB")
        if (not isinstance(self.timeout, (int, float)) or isinstance(self.timeout, bool)
                or not 0 < self.timeout < float("inf")):
            raise OptionsError(f"reference_timeout must be a positive number of seconds (got {self.timeout!r}); "
                               "pass e.g. --reference-timeout 60")
        self.source(output=None, storage_options={})  # refuse a bad entry now, not per request

    def source(self, *, output: str | None, storage_options: dict) -> SourceOptions:
        """The SourceOptions a reference is read with; `output` (the run's) is never readable."""
        from videoproc.source.options import SourceOptions

        return SourceOptions(
            storage_options=storage_options, local_root=self.local_root, allowed_domains=self.allowed_domains,
            allow_private_hosts=self.allow_private_hosts, allowed_prefixes=self.allowed_prefixes, own_output=output,
            data_media_types=("image/*", "application/octet-stream"), max_download_bytes=self.max_bytes,
            max_data_uri_bytes=self.max_bytes, connect_timeout=min(10.0, self.timeout),
            read_timeout=min(60.0, self.timeout), total_timeout=self.timeout,
        )


@dataclass(frozen=True, kw_only=True)
class GenerateOptions:
    """Everything `generate` needs. `models` holds `tiny-random` or diffusers-format folder paths.

    `fit` says what happens when a request breaks a model constraint (Wan: sides divisible by 16,
    4k+1 frames): `round` to the nearest allowed value and record it, or `reject` the request.

    `executor="ray"` runs the queue on the Ray cluster at `ray_address` ("auto", "HOST:PORT", or None
    for Ray's default), on `ray_actors` actors (None: one per GPU, or one per node on a CPU-only
    cluster); both Ray fields are refused with the local executor.

    `break_lock` takes an object-storage output's lock from the run holding it; `lock_lease` is how
    many seconds that lock lasts without renewal (default 60; see videoproc.common.runlock).
    `references` are the rules for reading `input_reference` images (ReferenceRules).
    """

    queue: str
    output: str
    models: tuple[str, ...]
    engine: Engine = "diffusers"
    device: Device = "auto"
    dtype: Dtype = "auto"
    fit: Fit = "round"
    limits: Limits = field(default_factory=Limits)
    storage_options: dict = field(default_factory=dict, compare=False)
    progress: ProgressMode = "auto"
    executor: Executor = "local"
    ray_address: str | None = None
    ray_actors: int | None = None
    references: ReferenceRules = field(default_factory=ReferenceRules)
    break_lock: bool = False
    lock_lease: float = DEFAULT_LEASE_S

    def __post_init__(self) -> None:
        check_lock_lease(self.lock_lease)
        check_choice("engine", self.engine, Engine)
        check_choice("device", self.device, Device)
        check_choice("dtype", self.dtype, Dtype)
        check_choice("fit", self.fit, Fit)
        if not self.models:
            raise OptionsError("no model given; pass --model tiny-random or --model PATH to a diffusers folder")
        if self.engine == "tensorrt-llm" and self.device == "cpu":
            raise OptionsError("engine 'tensorrt-llm' runs on CUDA only (got device='cpu'); "
                               "use --engine diffusers on a CPU")
        self._check_ray()

    def reference_source(self) -> SourceOptions:
        """The SourceOptions that `input_reference` images are read with."""
        return self.references.source(output=self.output, storage_options=self.storage_options)

    def _check_ray(self) -> None:
        check_choice("executor", self.executor, Executor)
        if self.ray_actors is not None and (type(self.ray_actors) is not int or self.ray_actors < 1):
            raise OptionsError(f"ray_actors must be a positive integer (got {self.ray_actors!r}); "
                               "pass e.g. --ray-actors 2")
        if self.executor != "ray":
            given = [name for name in ("ray_address", "ray_actors") if getattr(self, name) is not None]
            if given:
                flags = " and ".join("--" + name.replace("_", "-") for name in given)
                raise OptionsError(f"{flags} only apply to --executor ray (got executor={self.executor!r}); "
                                   "add --executor ray or drop them")
