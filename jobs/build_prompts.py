"""Write the sample generation queue `manifests/prompts.parquet` and its reference image.

python -m jobs.build_prompts  (from the repository root; the image path in the queue is relative to it)

The image, `manifests/media/reference.png`, is drawn here in code: 64x64 colour bars over a
gradient, so it needs no download and the script recreates it byte for byte.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

QUEUE = "manifests/prompts.parquet"
REFERENCE = "manifests/media/reference.png"

SCHEMA = pa.schema([
    ("id", pa.string()), ("prompt", pa.string()), ("negative_prompt", pa.string()), ("size", pa.string()),
    ("seconds", pa.float64()), ("fps", pa.int32()), ("num_frames", pa.int32()),
    ("num_inference_steps", pa.int32()), ("guidance_scale", pa.float64()), ("seed", pa.int64()),
    ("input_reference", pa.string()), ("response_format", pa.string()), ("user", pa.string()),
    ("category", pa.string()),  # not a request field: passed through to the records
])

ROWS = [
    dict(id="fox-snow", prompt="A red fox trotting through fresh snow at dawn, soft light", size="64x64",
         num_frames=17, num_inference_steps=4, seed=42, category="animals"),
    dict(id="ocean-aerial", prompt="Aerial view of waves breaking on a rocky coast", size="96x64",
         seconds=0.5, fps=16, num_inference_steps=4, seed=7, negative_prompt="blurry, low quality",
         category="nature"),
    dict(id="city-night", prompt="A neon-lit city street in the rain at night, slow pan", size="64x48",
         num_frames=9, num_inference_steps=4, response_format="b64_json", category="urban"),
    dict(id="bars-i2v", prompt="The colour bars ripple like a flag in the wind", size="64x64", num_frames=9,
         num_inference_steps=4, seed=3, input_reference=REFERENCE, user="sample", category="image-to-video"),
]


def reference_image() -> np.ndarray:
    """64x64 RGB: eight vertical colour bars, darkening towards the bottom."""
    bars = np.array([[255, 255, 255], [255, 255, 0], [0, 255, 255], [0, 255, 0],
                     [255, 0, 255], [255, 0, 0], [0, 0, 255], [0, 0, 0]], dtype=np.float64)
    image = np.repeat(bars, 8, axis=0)[None, :, :].repeat(64, axis=0)
    shade = np.linspace(1.0, 0.4, 64)[:, None, None]
    return np.rint(image * shade).astype(np.uint8)


def main() -> None:
    from PIL import Image

    os.makedirs(os.path.dirname(REFERENCE), exist_ok=True)
    Image.fromarray(reference_image()).save(REFERENCE, optimize=False)
    table = pa.Table.from_pylist(ROWS, schema=SCHEMA)
    pq.write_table(table, QUEUE)
    print(f"wrote {QUEUE} ({table.num_rows} requests) and {REFERENCE}")


if __name__ == "__main__":
    main()
