"""Option validation: every message says the value, the rule and the fix, before any work starts."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from videoproc.common.checks import parse_bytes
from videoproc.common.errors import OptionsError
from videoproc.preprocess.config import build_options, load_config, merge_flags
from videoproc.preprocess.options import PreprocessOptions, RunOptions
from videoproc.source.options import SourceOptions
from videoproc.video.options import DEFAULT_NUM_FRAMES, MAX_SIDE, VideoOptions, parse_size

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- sampling: Dynamo's wording ---------------------------------------------------------------


def test_fps_and_num_frames_together_are_refused():
    with pytest.raises(OptionsError, match=r"^fps and num_frames cannot be specified at the same time "
                                           r"\(got fps=2.0, num_frames=8\)"):
        VideoOptions(fps=2.0, num_frames=8)


def test_max_frames_and_num_frames_together_are_refused():
    with pytest.raises(OptionsError, match=r"^max_frames and num_frames cannot be specified at the same time "
                                           r"\(got max_frames=4, num_frames=8\)"):
        VideoOptions(num_frames=8, max_frames=4)


def test_max_frames_needs_fps():
    with pytest.raises(OptionsError, match=r"max_frames caps fps sampling and needs fps "
                                           r"\(got max_frames=4 without fps\); add --fps F"):
        VideoOptions(max_frames=4)


def test_num_frames_defaults_to_16_only_without_fps():
    assert VideoOptions().num_frames == DEFAULT_NUM_FRAMES == 16
    assert VideoOptions(fps=2.0).num_frames is None
    assert VideoOptions(fps=2.0, max_frames=10).max_frames == 10


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_frames": 0}, r"num_frames must be a positive integer, 1 or more \(got 0\); e.g. --num-frames 16"),
        ({"num_frames": -3}, r"num_frames must be a positive integer, 1 or more \(got -3\)"),
        ({"num_frames": 2.5}, r"num_frames must be a positive integer, 1 or more \(got 2.5\)"),
        ({"num_frames": True}, r"num_frames must be a positive integer, 1 or more \(got True\)"),
        ({"fps": 0.0}, r"fps must be a positive finite number \(got 0.0\); frames per second of video, e.g. --fps 2"),
        ({"fps": -1.5}, r"fps must be a positive finite number \(got -1.5\)"),
        ({"fps": float("nan")}, r"fps must be a positive finite number \(got nan\)"),
        ({"fps": float("inf")}, r"fps must be a positive finite number \(got inf\)"),
        ({"fps": "2"}, r"fps must be a positive finite number \(got '2'\)"),
        ({"fps": 1.0, "max_frames": 0}, r"max_frames must be a positive integer, 1 or more \(got 0\); "
                                        r"e.g. --max-frames 64"),
        ({"max_alloc": 0}, r"max_alloc must be a positive integer, 1 or more \(got 0\); e.g. --max-alloc 512MiB"),
        ({"size": (0, 224)}, rf"size width must be an integer from 1 to {MAX_SIDE} pixels \(got 0\)"),
        ({"size": (224, MAX_SIDE + 1)}, rf"size height must be an integer from 1 to {MAX_SIDE} pixels "
                                        rf"\(got {MAX_SIDE + 1}\)"),
        ({"size": (224.0, 224)}, r"size width must be an integer from 1 to 16384 pixels \(got 224.0\)"),
        ({"resize_mode": "fit"}, r"resize_mode must be one of stretch, crop, pad \(got 'fit'\)"),
        ({"seek_mode": "fast"}, r"seek_mode must be one of exact, keyframe \(got 'fast'\)"),
    ],
)
def test_video_options_refuse_bad_values(kwargs, message):
    with pytest.raises(OptionsError, match=message):
        VideoOptions(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"workers": 0}, r"workers must be a positive integer, 1 or more \(got 0\); e.g. --workers 4"),
        ({"shard_size": -1}, r"shard_size must be a positive integer, 1 or more \(got -1\); e.g. --shard-size 1000"),
        ({"timeout": 0}, r"timeout must be a positive finite number \(got 0\); seconds per video"),
        ({"timeout": float("nan")}, r"timeout must be a positive finite number \(got nan\)"),
        ({"decoder_threads": -2}, r"decoder_threads must be 0 \(automatic\) or a positive count \(got -2\)"),
        ({"executor": "slurm"}, r"executor must be one of local, ray \(got 'slurm'\)"),
        ({"progress": "loud"}, r"progress must be one of auto, bar, lines, off \(got 'loud'\)"),
        ({"overwrite": True, "retry_failed": True}, r"overwrite and retry_failed cannot be specified at the same time"),
    ],
)
def test_run_options_refuse_bad_values(kwargs, message):
    with pytest.raises(OptionsError, match=message):
        RunOptions(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_download_bytes": 0}, r"max_download_bytes must be a positive integer, 1 or more \(got 0\); e.g. 4GiB"),
        ({"max_data_uri_bytes": -5}, r"max_data_uri_bytes must be a positive integer, 1 or more \(got -5\)"),
        ({"connect_timeout": 0.0}, r"connect_timeout must be a positive finite number \(got 0.0\); seconds"),
        ({"read_timeout": -1}, r"read_timeout must be a positive finite number \(got -1\)"),
    ],
)
def test_source_options_refuse_bad_values(kwargs, message):
    with pytest.raises(OptionsError, match=message):
        SourceOptions(**kwargs)


def test_options_are_frozen_and_keyword_only():
    options = VideoOptions()
    with pytest.raises(AttributeError):
        options.fps = 2.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        VideoOptions(16)  # type: ignore[misc]


# -- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("224x224", (224, 224)), ("640X360", (640, 360)), (" 32 x 16 ", (32, 16)), ("1×2", (1, 2)),
     ("original", None), ("Original", None)],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["224", "224x", "x224", "-224x224", "224x224x3", "big", "", "22.5x10"])
def test_parse_size_refuses_malformed_text(text):
    with pytest.raises(OptionsError, match=rf"size must be WIDTHxHEIGHT in pixels or 'original' \(got {text!r}\); "
                                           r"e.g. --size 224x224"):
        parse_size(text)


@pytest.mark.parametrize(("text", "side"), [("0x224", "width"), ("224x0", "height"), ("99999x10", "width")])
def test_parse_size_refuses_out_of_range_sides(text, side):
    with pytest.raises(OptionsError, match=rf"size {side} must be an integer from 1 to {MAX_SIDE} pixels"):
        parse_size(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("536870912", 536870912),
        (1024, 1024),
        ("512MiB", 512 * 2**20),
        ("512mib", 512 * 2**20),
        ("1.5GiB", int(1.5 * 2**30)),
        ("4GiB", 4 * 2**30),
        ("10k", 10_000),
        ("10kb", 10_000),
        ("2M", 2_000_000),
        ("3 G", 3_000_000_000),
        ("64KiB", 65536),
        ("100b", 100),
    ],
)
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["lots", "-5", "12 TB", "iB", "5ib", "MiB", ""])
def test_parse_bytes_refuses_malformed_text(text):
    with pytest.raises(OptionsError, match=rf"expected a byte count such as 536870912 or 512MiB \(got {text!r}\)"):
        parse_bytes(text)


# -- job files and flags ----------------------------------------------------------------------


def _job_file(tmp_path, text: str) -> str:
    path = tmp_path / "job.toml"
    path.write_text(text)
    return str(path)


def test_job_file_values_become_options(tmp_path):
    path = _job_file(
        tmp_path,
        'output = "out"\nfps = 2.5\nmax-frames = 12\nsize = "original"\nresize_mode = "pad"\n'
        'no-autorotate = true\nstrict = true\nmax-alloc = "1GiB"\nworkers = 3\nshard-size = 7\n'
        'timeout = 12.5\nuri-column = "path"\nallowed-domains = "Example.com, b.org"\n',
    )
    options = build_options(manifest="m.parquet", values=load_config(path))
    assert options.video == VideoOptions(
        fps=2.5, max_frames=12, size=None, resize_mode="pad", autorotate=False, strict=True, max_alloc=2**30
    )
    assert (options.run.workers, options.run.shard_size, options.run.timeout) == (3, 7, 12.5)
    assert options.uri_column == "path"
    assert options.source.allowed_domains == ("example.com", "b.org")


def test_the_bundled_job_file_holds_only_overrides():
    """Defaults live in the option records; a key that restates one would hide a later change of
    the default and, for sampling, clash with flags."""
    values = {**load_config(os.path.join(ROOT, "jobs", "preprocess.toml")), "output": "out"}
    options = build_options(manifest="m.parquet", values=values)
    for key in set(values) - {"output"}:
        without = {k: v for k, v in values.items() if k != key}
        assert build_options(manifest="m.parquet", values=without) != options, f"{key} restates the default"


# -- a sampling flag replaces the job file's whole sampling group -----------------------------

_NO_FLAGS = {"num_frames": None, "fps": None, "max_frames": None, "size": None}


@pytest.mark.parametrize(
    ("file_text", "flags", "expected"),
    [
        # The README's example over a job file that sets a count.
        ("num-frames = 16\n", {"fps": 2.0, "max_frames": 32}, VideoOptions(fps=2.0, max_frames=32)),
        ("num-frames = 16\n", {"fps": 2.0}, VideoOptions(fps=2.0)),
        # The other way round: a count over a job file that sets a rate and its cap.
        ("fps = 2.5\nmax-frames = 12\n", {"num_frames": 8}, VideoOptions(num_frames=8)),
        # The whole group: a new rate does not inherit the file's cap.
        ("fps = 2.5\nmax-frames = 12\n", {"fps": 4.0}, VideoOptions(fps=4.0)),
        ("num-frames = 8\n", {"num_frames": 4}, VideoOptions(num_frames=4)),
        # Keys outside the group stay, and without a sampling flag the file's group stays.
        ('num-frames = 8\nsize = "64x48"\n', {"fps": 1.0}, VideoOptions(fps=1.0, size=(64, 48))),
        ("fps = 2.5\nmax-frames = 12\n", {"size": "32x24"}, VideoOptions(fps=2.5, max_frames=12, size=(32, 24))),
        ("num-frames = 8\n", {}, VideoOptions(num_frames=8)),
    ],
)
def test_a_sampling_flag_replaces_the_files_sampling_group(tmp_path, file_text, flags, expected):
    values = merge_flags(load_config(_job_file(tmp_path, 'output = "out"\n' + file_text)), {**_NO_FLAGS, **flags})
    assert build_options(manifest="m.parquet", values=values).video == expected


def test_fps_and_num_frames_both_as_flags_are_refused_as_before(tmp_path):
    path = _job_file(tmp_path, 'output = "out"\nnum-frames = 16\n')
    values = merge_flags(load_config(path), {**_NO_FLAGS, "fps": 2.0, "num_frames": 4})
    message = r"^fps and num_frames cannot be specified at the same time \(got fps=2.0, num_frames=4\); choose one"
    with pytest.raises(OptionsError, match=message):
        build_options(manifest="m.parquet", values=values)


def test_max_frames_alone_drops_the_files_rate_and_says_to_add_fps(tmp_path):
    path = _job_file(tmp_path, 'output = "out"\nfps = 2.5\nmax-frames = 12\n')
    values = merge_flags(load_config(path), {**_NO_FLAGS, "max_frames": 32})
    message = r"max_frames caps fps sampling and needs fps \(got max_frames=32 without fps\); add --fps F"
    with pytest.raises(OptionsError, match=message):
        build_options(manifest="m.parquet", values=values)


def test_job_file_with_an_unknown_key_is_refused(tmp_path):
    path = _job_file(tmp_path, 'output = "out"\nnum-frame = 8\nframerate = 2\n')
    with pytest.raises(OptionsError, match=rf"job file {path} has unknown option\(s\) framerate, num_frame; "
                                           r"known options: .*num_frames") as refused:
        load_config(path)
    assert "break_lock" not in str(refused.value)  # known, but never allowed in a file: not offered


def test_job_file_refuses_break_lock(tmp_path):
    path = _job_file(tmp_path, 'output = "out"\nbreak-lock = true\n')
    with pytest.raises(OptionsError, match=rf"job file {path} sets break_lock, which takes the output's lock "
                                           r"from another run: .* remove it and pass --break-lock by hand"):
        load_config(path)


def test_job_file_that_is_not_toml_is_refused(tmp_path):
    path = _job_file(tmp_path, "num-frames = = 8\n")
    with pytest.raises(OptionsError, match=rf"job file {path} is not valid TOML"):
        load_config(path)


def test_missing_job_file_is_refused(tmp_path):
    path = str(tmp_path / "nope.toml")
    with pytest.raises(OptionsError, match=rf"job file {path} does not exist; check --config"):
        load_config(path)


def test_job_file_values_are_validated(tmp_path):
    path = _job_file(tmp_path, 'output = "out"\nnum-frames = 0\n')
    with pytest.raises(OptionsError, match=r"num_frames must be a positive integer, 1 or more \(got 0\)"):
        build_options(manifest="m.parquet", values=load_config(path))
    path = _job_file(tmp_path, 'output = "out"\nsize = "wide"\n')
    with pytest.raises(OptionsError, match=r"size must be WIDTHxHEIGHT in pixels or 'original' \(got 'wide'\)"):
        build_options(manifest="m.parquet", values=load_config(path))


def test_output_is_required():
    with pytest.raises(OptionsError, match=r"--output is required: a local folder or fsspec URL"):
        build_options(manifest="m.parquet", values={})


@pytest.mark.parametrize(
    ("value", "message"),
    [("{not json", r"--storage-options must be a JSON object \(got '\{not json': Expecting"),
     ("[1, 2]", r"--storage-options must be a JSON object like")],
)
def test_storage_options_must_be_a_json_object(value, message):
    with pytest.raises(OptionsError, match=message):
        build_options(manifest="m.parquet", values={"output": "out", "storage_options": value})


def test_fingerprint_holds_the_result_changing_options():
    options = build_options(manifest="m.parquet", values={"output": "out", "fps": 1.0, "size": "32x16"})
    fingerprint = options.result_fingerprint()
    assert fingerprint["video"]["fps"] == 1.0 and fingerprint["video"]["size"] == [32, 16]
    assert "workers" not in fingerprint
    secrets = build_options(manifest="m", values={"output": "o", "storage_options": {"key": "SECRET"}})
    assert "SECRET" not in str(secrets.to_dict())


# -- the CLI layer: flags override the job file, bad flags stop before any work -----------------


@pytest.fixture
def captured(monkeypatch):
    """Run the preprocess command without doing any work; returns the options it resolved."""
    seen: list[PreprocessOptions] = []

    def fake_run(options, **_):
        seen.append(options)
        from videoproc.preprocess.job import RunReport

        summary = {"rows_ok": 0, "rows_failed": 0, "rows_total": 0, "output": options.output,
                   "shards_committed": 0, "shards_total": 0, "shards_pending": 0, "top_errors": {},
                   "elapsed_s": 0.0}
        return RunReport(summary=summary, exit_code=0)

    monkeypatch.setattr("videoproc.preprocess.job.run_preprocess", fake_run)
    return seen


def _invoke(*args: str):
    from videoproc.cli import main

    return CliRunner().invoke(main, ["preprocess", *args])


def test_flags_not_given_leave_the_records_defaults(captured):
    result = _invoke("m.parquet", "--output", "o")
    assert result.exit_code == 0, result.output
    # own_output is the job's, not a flag: the output no row may read.
    assert captured == [PreprocessOptions(manifest="m.parquet", output="o", source=SourceOptions(own_output="o"))]


def test_flags_override_the_job_file(tmp_path, captured):
    path = _job_file(tmp_path, 'output = "from-file"\nnum-frames = 4\nsize = "64x64"\nworkers = 3\n')
    result = _invoke("m.parquet", "--config", path, "--num-frames", "9", "--output", "from-flag")
    assert result.exit_code == 0, result.output
    options = captured[0]
    assert options.video.num_frames == 9
    assert options.output == "from-flag"
    assert options.video.size == (64, 64) and options.run.workers == 3  # not overridden: kept


def test_fps_flags_replace_num_frames_of_the_job_file(tmp_path, captured):
    path = _job_file(tmp_path, 'output = "o"\nnum-frames = 4\nsize = "64x64"\n')
    result = _invoke("m.parquet", "--config", path, "--fps", "2", "--max-frames", "32")
    assert result.exit_code == 0, result.output
    assert captured[0].video == VideoOptions(fps=2.0, max_frames=32, size=(64, 64))


def test_num_frames_flag_replaces_fps_and_max_frames_of_the_job_file(tmp_path, captured):
    path = _job_file(tmp_path, 'output = "o"\nfps = 2.0\nmax-frames = 32\n')
    result = _invoke("m.parquet", "--config", path, "--num-frames", "8")
    assert result.exit_code == 0, result.output
    assert captured[0].video == VideoOptions(num_frames=8)


def test_fps_and_num_frames_both_as_flags_exit_2_whatever_the_job_file(tmp_path, captured):
    path = _job_file(tmp_path, 'output = "o"\nfps = 1.0\n')
    result = _invoke("m.parquet", "--config", path, "--fps", "2", "--num-frames", "4")
    assert result.exit_code == 2
    message = "error: fps and num_frames cannot be specified at the same time (got fps=2.0, num_frames=4); choose one"
    assert message in result.output
    assert not captured


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--num-frames", "0"], "num_frames must be a positive integer, 1 or more (got 0)"),
        (["--fps", "2", "--num-frames", "3"], "fps and num_frames cannot be specified at the same time"),
        (["--num-frames", "3", "--max-frames", "2"], "max_frames and num_frames cannot be specified at the same time"),
        (["--size", "224"], "size must be WIDTHxHEIGHT in pixels or 'original' (got '224')"),
        (["--max-alloc", "plenty"], "expected a byte count such as 536870912 or 512MiB (got 'plenty')"),
        (["--timeout", "-1"], "timeout must be a positive finite number (got -1.0)"),
    ],
)
def test_bad_flags_exit_2_before_any_work(args, message, captured):
    result = _invoke("m.parquet", "--output", "o", *args)
    assert result.exit_code == 2
    assert f"error: {message}" in result.output
    assert not captured
