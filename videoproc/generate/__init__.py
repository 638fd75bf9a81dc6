"""The generation stage: a queue of diffusion prompts turned into MP4 files and records.

The modules follow the data:

    requests   read the Parquet queue, validate each row into a `Request` (or a `Rejected`)
    models     what `--model` names: a diffusers folder or the built-in `tiny-random`
    reference  the image bytes behind an `input_reference` URI (image-to-video)
    engines/   the engine seam: one Protocol, the diffusers engine, the TensorRT-LLM adapter
    encode     frames -> H.264 yuv420p MP4, published atomically
    records    the record schema and the one-file-per-request record store
    lock       one runner per output folder
    runner     the queue loop that wires them, with resume
    command    the `generate` click command

Importing this package imports neither torch nor diffusers; the engines load them when opened.
"""

from videoproc.generate.options import GenerateOptions, Limits
from videoproc.generate.runner import RunSummary, run

__all__ = ["GenerateOptions", "Limits", "RunSummary", "run"]
