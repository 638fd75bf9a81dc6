"""The diffusers engine on CUDA with the tiny model; skipped without a GPU."""

from __future__ import annotations

import pytest

from gen_helpers import read_records, run_queue, write_queue


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU")
def test_tiny_random_on_cuda_is_reproducible(small_rows, tmp_path):
    queue = write_queue(tmp_path / "q.parquet", small_rows + [dict(small_rows[0], id="again")])
    summary = run_queue(queue, tmp_path / "out", device="cuda")
    records = {r["id"]: r for r in read_records(tmp_path / "out")}
    assert summary.completed == 4 and records["t2v-a"]["device"] == "cuda"
    assert records["t2v-a"]["dtype"] == "bfloat16"
    assert records["t2v-a"]["sha256"] == records["again"]["sha256"]
