"""A worker hands its frames to the parent through an in-memory file (videoproc.preprocess.handoff):
the bytes arrive unchanged, only a small message crosses the socket, a file the kernel refuses to
grow sends them over the socket instead, and a huge row's memory is not kept for the run."""

from __future__ import annotations

import fcntl
import os
import pickle

import pytest

from tests.hooks import SEGFAULT_MARK, faulting_job
from videoproc.common.testmedia import Clip
from videoproc.preprocess import handoff
from videoproc.preprocess.pool import WorkerConfig, WorkerPool
from videoproc.source.options import SourceOptions
from videoproc.video.options import VideoOptions
from videoproc.video.process import VideoResult, VideoTask, process_video

ROW = 16 * 224 * 224 * 3  # 2.4 MB: a raw row of the default 16 frames at 224x224
CLIP = Clip(name="handoff_320x240.mp4", args=(
    "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=2", "-c:v", "libx264", "-preset", "veryfast",
    "-pix_fmt", "yuv420p",
))


def _result(frames: bytes | None) -> VideoResult:
    return VideoResult(row=3, id="v", uri="v.mp4", status="ok", frames=frames, shape=(16, 224, 224, 3))


@pytest.fixture
def memfd():
    fd = handoff.open_file()
    assert fd is not None, "Linux has memfd_create"
    yield fd
    os.close(fd)


def test_a_row_goes_through_the_file_and_comes_back_unchanged(memfd):
    frames = os.urandom(ROW)
    message = handoff.pack(_result(frames), memfd)
    assert isinstance(message, handoff.InFile) and message.length == ROW
    assert len(pickle.dumps(message)) < 4096  # what crosses the socket
    assert handoff.unpack(message, memfd) == _result(frames)


def test_small_frames_and_failed_rows_stay_on_the_socket(memfd):
    small = _result(os.urandom(handoff.MIN_BYTES - 1))
    assert handoff.pack(small, memfd) is small
    failed = VideoResult(row=0, id="v", uri="v.mp4", status="failed", error="no video stream")
    assert handoff.pack(failed, memfd) is failed
    assert os.fstat(memfd).st_size == 0


def test_a_file_the_kernel_will_not_grow_sends_the_frames_over_the_socket():
    # A sealed memfd refuses to grow (EPERM), as a full memory file refuses with ENOSPC or ENOMEM.
    fd = os.memfd_create("sealed", os.MFD_ALLOW_SEALING)
    try:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_GROW)
        result = _result(os.urandom(ROW))
        assert handoff.pack(result, fd) is result
    finally:
        os.close(fd)


def test_a_huge_row_does_not_keep_its_memory_for_the_next(memfd):
    handoff.pack(_result(bytes(handoff.KEEP_BYTES + ROW)), memfd)
    assert os.fstat(memfd).st_size == handoff.KEEP_BYTES + ROW
    frames = os.urandom(ROW)
    message = handoff.pack(_result(frames), memfd)
    assert os.fstat(memfd).st_size == ROW
    assert handoff.unpack(message, memfd).frames == frames


def test_a_short_file_is_an_error_not_a_short_row(memfd):
    message = handoff.pack(_result(os.urandom(ROW)), memfd)
    os.ftruncate(memfd, ROW // 2)
    with pytest.raises(OSError, match=f"a worker's frames file holds {ROW // 2} bytes, {ROW} were sent"):
        handoff.unpack(message, memfd)


def test_the_pool_returns_the_same_frames_as_an_in_process_call(clip_factory):
    path = clip_factory(CLIP)
    kwargs = {"video": VideoOptions(num_frames=16, size=(224, 224)), "source": SourceOptions(), "threads": 1}
    tasks = [VideoTask(row=k, id=f"v{k}", uri=path) for k in range(3)]
    with WorkerPool(workers=1, config=WorkerConfig(job=process_video, kwargs=kwargs), timeout=60) as pool:
        results = list(pool.run(tasks))
        (worker,) = pool._workers
        # The frames travelled through the worker's file: it holds the last row.
        assert worker.frames_fd is not None and os.fstat(worker.frames_fd).st_size == ROW
    expected = process_video(tasks[0], **kwargs)
    assert [r.status for r in results] == ["ok"] * 3
    assert all(r.frames == expected.frames and len(r.frames) == ROW for r in results)


def test_a_crashed_worker_leaves_no_open_file(clip_factory):
    kwargs = {"video": VideoOptions(num_frames=16, size=(224, 224)), "source": SourceOptions(), "threads": 1}
    tasks = [VideoTask(row=k, id=f"v{k}", uri=f"{SEGFAULT_MARK}-{k}.mp4") for k in range(3)]
    open_before = len(os.listdir("/proc/self/fd"))
    with WorkerPool(workers=1, config=WorkerConfig(job=faulting_job, kwargs=kwargs), timeout=60) as pool:
        results = list(pool.run([*tasks, VideoTask(row=3, id="ok", uri=clip_factory(CLIP))]))
        assert pool.replaced == 3
    assert [r.status for r in results] == ["failed"] * 3 + ["ok"]
    assert len(os.listdir("/proc/self/fd")) == open_before
