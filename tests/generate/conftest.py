"""Fixtures for the generation stage: a reference image, small requests, and the tiny model on disk.

The tiny model folders are written once per session with `save_tiny_model` (diffusers'
save_pretrained); the tests then load them by path like any real model folder.
"""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def reference_png(tmp_path_factory) -> str:
    """A 32x32 PNG of four colour quadrants, written with Pillow."""
    from PIL import Image

    image = np.zeros((32, 32, 3), np.uint8)
    image[:16, :16] = (255, 0, 0)
    image[:16, 16:] = (0, 255, 0)
    image[16:, :16] = (0, 0, 255)
    image[16:, 16:] = (255, 255, 255)
    path = tmp_path_factory.mktemp("media") / "reference.png"
    Image.fromarray(image).save(path)
    return str(path)


@pytest.fixture(scope="session")
def tiny_folders(tmp_path_factory) -> dict[str, str]:
    """The tiny model saved as two diffusers-format folders: {'t2v': path, 'i2v': path}."""
    from videoproc.generate.tiny_model import save_tiny_model

    root = tmp_path_factory.mktemp("models")
    return {task: save_tiny_model(str(root / f"tiny-wan-{task}"), task) for task in ("t2v", "i2v")}


@pytest.fixture
def small_rows(reference_png) -> list[dict]:
    """Three quick requests: two text-to-video, one image-to-video, all seeded."""
    return [
        dict(id="t2v-a", prompt="a red fox in the snow", size="32x32", num_frames=5, num_inference_steps=2, seed=1),
        dict(id="t2v-b", prompt="waves on rocks", size="48x32", num_frames=9, num_inference_steps=2, seed=2,
             response_format="b64_json"),
        dict(id="i2v-a", prompt="the quadrants spin", size="32x32", num_frames=5, num_inference_steps=2, seed=3,
             input_reference=reference_png),
    ]
