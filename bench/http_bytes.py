"""Bytes fetched over HTTP to sample 16 frames of a 60 s 720p H.264 video with 1 s keyframes.

`python -m bench.http_bytes [--quick]`. The video is served by the test suite's HTTP server on
127.0.0.1 with Range support; the server counts the body bytes it sends, so the figure is what
crossed the network, not what the demuxer asked for.
"""

from __future__ import annotations

import argparse
import os
import time

from bench.corpus import DEFAULT_CORPUS_DIR, SHORT_DENSE, build, full_corpus, quick_corpus
from tests.servers.http_server import HttpTestServer
from videoproc.source.options import SourceOptions
from videoproc.video.options import VideoOptions
from videoproc.video.process import VideoTask, process_video


def measure(path: str) -> dict[str, float]:
    name = os.path.basename(path)
    with HttpTestServer({name: path}) as server:
        # The server is on 127.0.0.1, which the URL safety check refuses unless allowed.
        source = SourceOptions(allow_private_hosts=(f"127.0.0.1:{server.port}",))
        started = time.monotonic()
        result = process_video(
            VideoTask(row=0, id="bench", uri=server.url(f"files/{name}")),
            video=VideoOptions(num_frames=16, size=(224, 224)), source=source, threads=1,
        )
        elapsed = time.monotonic() - started
        assert result.status == "ok", result.error
        size = os.path.getsize(path)
        return {"size": size, "sent": server.sent[name], "requests": len(server.requests),
                "demuxer_read": result.bytes_read, "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a 2 s clip instead (smoke test)")
    args = parser.parse_args()
    videos = [v for v in (quick_corpus() if args.quick else full_corpus()) if SHORT_DENSE in v.tags]
    paths = build(videos, DEFAULT_CORPUS_DIR)
    for video in videos:
        m = measure(paths[video.name])
        print(f"| {video.description} | {m['size'] / 1e6:.1f} MB | {m['sent'] / 1e6:.2f} MB "
              f"({100 * m['sent'] / m['size']:.1f} %) | {m['requests']:.0f} requests | {m['seconds']:.2f} s |")


if __name__ == "__main__":
    main()
