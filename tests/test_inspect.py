"""`videoproc inspect`: the contact sheet matches the stored frames pixel for pixel, the status
table and errors, the self-contained HTML report, the CLI, and poster strips of generated videos."""

from __future__ import annotations

import base64
import html.parser
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from tests.conftest import ffmpeg_frames, psnr
from tests.runs import stored_rows
from videoproc.common.testmedia import Clip
from videoproc.read import ReadError
from videoproc.report.command import inspect_cmd
from videoproc.report.output import format_table, inspect_output, sheet_png, write_html, write_sheet
from videoproc.report.sheet import LABEL_H, MARGIN, pick

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def strip_id(label: str) -> str:
    return label.split("  ")[0]


def assert_strips_match(sheet, strips, expected_frames) -> None:
    """Every placed frame, cut back out of the image, equals its stored frame[::step, ::step]."""
    pixels = np.asarray(sheet.image.convert("RGB"))
    for placement in sheet.placements:
        stored = expected_frames[strip_id(strips[placement.strip].label)]
        frame = stored[pick(len(stored), 8)[placement.frame]][:: placement.step, :: placement.step]
        height, width = frame.shape[:2]
        cut = pixels[placement.y : placement.y + height, placement.x : placement.x + width]
        np.testing.assert_array_equal(cut, frame)


@pytest.mark.parametrize("max_side, step", [(128, 1), (20, 3)])
def test_the_contact_sheet_strips_are_the_stored_frames(real_run, tmp_path, max_side, step):
    inspection = inspect_output(real_run, sample=100)
    path = str(tmp_path / "sheet.png")
    sheet = write_sheet(inspection, path, max_side=max_side)
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    reread = Image.open(path)
    reread.load()
    assert reread.format == "PNG" and reread.size == sheet.image.size
    stored = {row_id: row["frames"] for row_id, row in stored_rows(real_run).items()}
    assert [strip_id(s.label) for s in inspection.strips] == list(stored), "every ok row, in output order"
    assert len(sheet.placements) == 4 * len(stored) and {p.step for p in sheet.placements} == {step}
    first = sheet.placements[0]
    assert (first.x, first.y) == (MARGIN, MARGIN + LABEL_H)
    assert_strips_match(type(sheet)(image=reread, placements=sheet.placements), inspection.strips, stored)


def test_a_strip_is_labelled_with_the_id_and_captioned_with_the_timestamps(real_run):
    inspection = inspect_output(real_run, sample=100)
    stored = stored_rows(real_run)
    for strip in inspection.strips:
        row = stored[strip_id(strip.label)]
        assert strip.label == f"{row['id']}  4 frames 48x32"
        assert strip.captions == tuple(f"{t:.2f}s" for t in row["timestamps"])


def test_long_rows_show_frames_spread_evenly():
    assert pick(16, 8) == [0, 2, 4, 6, 9, 11, 13, 15]
    assert pick(3, 8) == [0, 1, 2]
    assert pick(5, 1) == [0]


def test_the_sample_is_seeded_and_limited(real_run):
    ids = lambda seed: [strip_id(s.label) for s in inspect_output(real_run, sample=3, seed=seed).strips]  # noqa: E731
    assert len(ids(1)) == 3 and ids(1) == ids(1)
    assert len({tuple(ids(seed)) for seed in range(8)}) > 1
    with pytest.raises(ReadError, match=r"sample must be a positive count \(got 0\); e.g. --sample 8"):
        inspect_output(real_run, sample=0)


def test_the_table_shows_statuses_and_the_most_common_errors(real_run):
    inspection = inspect_output(real_run)
    assert inspection.statuses == {"ok": 7, "failed": 1}
    table = format_table(inspection)
    assert "ok                 7    87.5%" in table and "failed             1    12.5%" in table
    assert "shards: 3 of 3 committed" in table
    assert "most common errors:" in table and "file not found" in table
    assert [row["id"] for row in inspection.failed] == ["missing"]


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.links += [value for name, value in attrs if name in ("src", "href") and value]


def test_the_html_report_is_self_contained(real_run, tmp_path):
    inspection = inspect_output(real_run)
    path = str(tmp_path / "report.html")
    write_html(inspection, path)
    page = Path(path).read_text(encoding="utf-8")
    parser = _Links()
    parser.feed(page)
    assert "script" not in parser.tags and "link" not in parser.tags
    assert parser.links and all(link.startswith("data:image/png;base64,") for link in parser.links)
    png = base64.b64decode(parser.links[0].split(",", 1)[1])
    assert png == sheet_png(inspection)[1]
    assert Image.open(io.BytesIO(png)).format == "PNG"
    run = json.loads(Path(real_run, "_videoproc", "run.json").read_text())
    assert '&quot;num_frames&quot;: 4' in page and run["options"]["output"] in page
    assert "<td>missing</td>" in page and "file not found" in page
    assert "<td>ok</td><td class=\"n\">7</td>" in page


def test_the_command_prints_the_table_and_writes_both_files(real_run, tmp_path):
    sheet, report = str(tmp_path / "s.png"), str(tmp_path / "r.html")
    result = CliRunner().invoke(inspect_cmd, [real_run, "--sheet", sheet, "--html", report, "--sample", "2"])
    assert result.exit_code == 0, result.output
    assert "failed             1" in result.output and f"contact sheet: {sheet} (2 rows)" in result.output
    assert Path(sheet).read_bytes()[:8] == PNG_SIGNATURE and os.path.getsize(report) > 0


def test_the_command_refuses_a_folder_that_is_no_output(tmp_path):
    result = CliRunner().invoke(inspect_cmd, [str(tmp_path), "--sheet", str(tmp_path / "s.png")])
    assert result.exit_code == 2
    assert "is neither a preprocess output (no _videoproc/run.json) nor a generation output" in result.output
    result = CliRunner().invoke(inspect_cmd, [str(tmp_path), "--storage-options", "[1]"])
    assert (result.exit_code == 2
            and "--storage-options must be a JSON object like '{\"anon\": true}' (got '[1]')" in result.output)


# Generation outputs: OUTPUT/videos/<id>.mp4, records, run.json.

GENERATED = [
    Clip(name="gen_a.mp4", args=("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=8:duration=1",
                                 "-pix_fmt", "yuv420p", "-c:v", "libx264")),
    Clip(name="gen_b.mp4", args=("-f", "lavfi", "-i", "mandelbrot=size=64x48:rate=8", "-t", "1.5",
                                 "-pix_fmt", "yuv420p", "-c:v", "libx264")),
]


@pytest.fixture
def generation_output(tmp_path, clip_factory) -> str:
    out = tmp_path / "gen"
    (out / "videos").mkdir(parents=True)
    for clip, key in zip(GENERATED, ("a", "b"), strict=True):
        shutil.copy(clip_factory(clip), out / "videos" / f"{key}.mp4")
    (out / "videos" / ".c.partial.mp4").write_bytes(b"not yet")
    pq.write_table(pa.table({
        "id": ["a", "b", "c"], "status": ["completed", "completed", "failed"], "queue_row": [0, 1, 2],
        "prompt": ["a test card", "a fractal", "a bad one"], "error": [None, None, "engine ran out of memory"],
    }), out / "records.parquet")
    (out / "run.json").write_text(json.dumps({"engine": "diffusers", "models": [{"name": "tiny-random"}]}))
    return str(out)


def test_generation_report_matches_videos_by_key_and_leaves_out_earlier_records(tmp_path, clip_factory):
    """A path-like id names its video by its key; records/ may hold an edited row's earlier record,
    which records.parquet leaves out (and says how many files it saw)."""
    out = tmp_path / "gen"
    (out / "videos").mkdir(parents=True)
    (out / "records").mkdir()
    shutil.copy(clip_factory(GENERATED[0]), out / "videos" / "id-0123456789abcdef.mp4")
    current = pa.table({"id": ["kinetics/a.mp4"], "key": ["id-0123456789abcdef"], "status": ["completed"],
                        "queue_row": [0], "prompt": ["a test card"], "error": [None]})
    earlier = current.set_column(0, "id", pa.array(["req-000000-0badf00d"]))
    pq.write_table(current, out / "records" / "id-0123456789abcdef.parquet")
    pq.write_table(earlier, out / "records" / "req-000000-0badf00d.parquet")
    pq.write_table(current.replace_schema_metadata({b"videoproc.record_files": b"2"}), out / "records.parquet")
    inspection = inspect_output(str(out), max_frames=2)
    assert inspection.statuses == {"completed": 1, "failed": 0}
    assert [s.label for s in inspection.strips] == ["id-0123456789abcdef  8 frames  a test card"]


def test_generated_videos_get_poster_strips_of_their_decoded_frames(generation_output, tmp_path):
    inspection = inspect_output(generation_output, max_frames=4)
    assert inspection.kind == "generate"
    assert inspection.statuses == {"completed": 2, "failed": 1}
    assert inspection.top_errors == {"engine ran out of memory": 1}
    assert [strip_id(s.label) for s in inspection.strips] == ["a", "b"]
    assert inspection.strips[0].label == "a  8 frames  a test card"
    for strip, key in zip(inspection.strips, ("a", "b"), strict=True):
        reference = ffmpeg_frames(os.path.join(generation_output, "videos", f"{key}.mp4"))
        assert len(strip.frames) == 4
        for shown, index in zip(strip.frames, pick(len(reference), 4), strict=True):
            assert psnr(shown, reference[index]) > 30
    sheet = write_sheet(inspection, str(tmp_path / "gen.png"))
    assert len(sheet.placements) == 8
    table = format_table(inspection)
    assert "completed          2" in table and "videos: 2 MP4 files in videos/" in table
    write_html(inspection, str(tmp_path / "gen.html"))
    page = (tmp_path / "gen.html").read_text(encoding="utf-8")
    assert "a bad one" in page and "&quot;engine&quot;: &quot;diffusers&quot;" in page
