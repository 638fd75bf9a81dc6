"""The TensorRT-LLM adapter against a fake `tensorrt_llm` with the public VisualGen API, and the
error when the real package is missing. The real engine runs only in the GPU smoke script."""

from __future__ import annotations

import json
import os
import sys

import pytest

from gen_helpers import read_records, run_queue, write_queue
from videoproc.generate.engines import EngineError
from videoproc.generate.engines.trtllm_engine import import_tensorrt_llm

FAKE = os.path.join(os.path.dirname(__file__), "fake_trtllm")


@pytest.fixture
def fake_trtllm(monkeypatch):
    monkeypatch.syspath_prepend(FAKE)
    monkeypatch.delitem(sys.modules, "tensorrt_llm", raising=False)
    import tensorrt_llm

    tensorrt_llm.CALLS.clear()
    yield tensorrt_llm
    sys.modules.pop("tensorrt_llm", None)


@pytest.fixture
def wan_folders(tmp_path):
    """Folders with only a model_index.json: the fake loads no weights."""
    folders = {}
    for task, cls in (("t2v", "WanPipeline"), ("i2v", "WanImageToVideoPipeline")):
        folder = tmp_path / f"Wan-{task}"
        folder.mkdir()
        (folder / "model_index.json").write_text(json.dumps({"_class_name": cls}))
        folders[task] = str(folder)
    return folders


def test_missing_package_names_the_extra_and_its_requirements(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt_llm", None)  # makes `import tensorrt_llm` fail
    with pytest.raises(EngineError, match=r"pip install 'videoproc\[tensorrt-llm\]' on a machine with an NVIDIA "
                                          r"GPU, CUDA 13 and Python 3.10 or 3.12 \(this is Python 3.\d+\)"):
        import_tensorrt_llm()


def test_package_without_visualgen_is_refused(monkeypatch):
    import types

    monkeypatch.setitem(sys.modules, "tensorrt_llm", types.SimpleNamespace(__version__="0.20.0"))
    with pytest.raises(EngineError, match=r"tensorrt_llm 0.20.0 has no public VisualGen API"):
        import_tensorrt_llm()


def test_queue_through_the_adapter(fake_trtllm, wan_folders, reference_png, tmp_path):
    rows = [dict(id="a", prompt="a fox", size="64x48", num_frames=9, seed=5, negative_prompt="blur"),
            dict(id="b", prompt="a FAIL case", size="32x32", num_frames=5, seed=6),
            dict(id="c", prompt="spin", size="32x32", num_frames=5, seed=7, input_reference=reference_png)]
    queue = write_queue(tmp_path / "q.parquet", rows)
    summary = run_queue(queue, tmp_path / "out", models=(wan_folders["t2v"], wan_folders["i2v"]),
                        engine="tensorrt-llm")
    assert (summary.completed, summary.failed) == (2, 1)
    by_id = {r["id"]: r for r in read_records(tmp_path / "out")}
    assert by_id["a"]["engine"] == "tensorrt-llm" and by_id["a"]["engine_version"] == "1.4.0rc-fake"
    assert (by_id["a"]["width"], by_id["a"]["height"], by_id["a"]["num_frames"]) == (64, 48, 9)
    assert by_id["b"]["error"] == "RuntimeError: TensorRT-LLM VisualGen failed: CUDA out of memory (fake)"
    first = fake_trtllm.CALLS[0]
    assert first["model"] == wan_folders["t2v"] and first["inputs"] == "a fox"
    assert {k: first["params"][k] for k in ("height", "width", "num_frames", "frame_rate", "seed",
                                            "negative_prompt")} == dict(height=48, width=64, num_frames=9,
                                                                        frame_rate=24, seed=5, negative_prompt="blur")
    image_call = fake_trtllm.CALLS[2]
    assert image_call["model"] == wan_folders["i2v"] and image_call["params"]["image"].size == (32, 32)


@pytest.mark.parametrize("name", ["input_reference", "image_reference"])
def test_older_image_field_names(fake_trtllm, wan_folders, reference_png, tmp_path, monkeypatch, name):
    monkeypatch.setattr(fake_trtllm, "IMAGE_FIELD", name)
    fake_trtllm._refresh_fields()
    queue = write_queue(tmp_path / "q.parquet", [dict(id="c", prompt="spin", size="32x32", num_frames=5, seed=7,
                                                      input_reference=reference_png)])
    run_queue(queue, tmp_path / "out", models=(wan_folders["i2v"],), engine="tensorrt-llm")
    assert name in fake_trtllm.CALLS[0]["params"]
    monkeypatch.setattr(fake_trtllm, "IMAGE_FIELD", "image")
    fake_trtllm._refresh_fields()


def test_tiny_random_needs_the_diffusers_engine(fake_trtllm, tmp_path):
    queue = write_queue(tmp_path / "q.parquet", [dict(prompt="x")])
    with pytest.raises(EngineError, match=r"loads model folders only \(got 'tiny-random'.*use --engine diffusers"):
        run_queue(queue, tmp_path / "out", engine="tensorrt-llm")
