"""Every validation rule of a request, and the queue-level checks."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import replace
from decimal import Decimal

import pytest

from gen_helpers import write_queue
from videoproc.generate.models import TINY, WAN, ModelRef
from videoproc.generate.options import Limits
from videoproc.generate.requests import (
    SEED_LIMIT,
    QueueError,
    Rejected,
    RequestError,
    is_safe_id,
    key_for_id,
    read_queue,
    record_key,
    request_id,
    resolve_request,
)

WAN_T2V = ModelRef(name="Wan2.1-T2V-1.3B", path="/models/wan-t2v", class_name="WanPipeline",
                   tasks=frozenset({"t2v"}), spec=WAN)
WAN_I2V = ModelRef(name="Wan2.1-I2V", path="/models/wan-i2v", class_name="WanImageToVideoPipeline",
                   tasks=frozenset({"i2v"}), spec=WAN)


def resolve(raw: dict, *, models=(WAN_T2V, WAN_I2V), fit="round", limits=Limits(), row=0):
    """resolve_request, raising the rejection so tests can use pytest.raises(match=...)."""
    result = resolve_request(raw, row=row, models=models, limits=limits, fit=fit, draw_seed=lambda: 1234)
    if isinstance(result, Rejected):
        raise RequestError(result.error)
    return result


def test_defaults_are_dynamos_for_wan():
    request = resolve({"prompt": "a cat"})
    assert (request.width, request.height, request.num_frames, request.fps) == (832, 480, 81, 24)
    assert (request.num_inference_steps, request.guidance_scale) == (50, 5.0)
    assert request.response_format == "url" and request.model is WAN_T2V and request.adjustment is None


@pytest.mark.parametrize("prompt", [None, "", "   ", float("nan")])
def test_prompt_is_required(prompt):
    with pytest.raises(RequestError, match=r"prompt is missing or empty .*every request needs a prompt"):
        resolve({"prompt": prompt})


def test_prompt_must_be_text():
    with pytest.raises(RequestError, match=r"prompt 5 must be text \(got int\)"):
        resolve({"prompt": 5})


@pytest.mark.parametrize("given", ["kinetics/train/abc.mp4", "a\\b", "..", "x..y", "../etc", "has space",
                                   "-lead", "é", "x" * 129, "id-0123456789abcdef/"])
def test_ids_unsafe_as_file_names_are_kept_and_get_a_hashed_key(given):
    assert not is_safe_id(given)
    request = resolve({"id": given, "prompt": "p"})
    digest = hashlib.sha256(given.encode()).hexdigest()
    assert request.id == given and request.key == key_for_id(given) == f"id-{digest[:16]}"
    assert is_safe_id(request.key)


@pytest.mark.parametrize("given", ["clip-001", "A.b_c", "x" * 128])
def test_safe_ids_are_their_own_key(given):
    assert resolve({"id": given, "prompt": "p"}).key == given == key_for_id(given)


def test_a_rejected_row_keeps_its_id_and_key():
    result = resolve_request({"id": "../x", "prompt": "p", "size": "huge"}, row=7, models=(WAN_T2V,),
                             limits=Limits(), fit="round", draw_seed=lambda: 1)
    assert isinstance(result, Rejected) and result.id == "../x" and result.key == key_for_id("../x")
    assert record_key({"id": "../x"}, 7) == result.key


def test_ids_with_nul_fail_naming_the_rule():
    with pytest.raises(RequestError, match=r"id 'a\\x00b' is not allowed: ids must contain no NUL character; "
                                           r"fix the queue's id column or leave the id empty"):
        resolve({"id": "a\0b", "prompt": "p"})


def test_an_id_spelling_another_ids_key_is_refused(tmp_path):
    path = "kinetics/train/abc.mp4"
    rows = [{"id": path, "prompt": "p"}, {"id": key_for_id(path), "prompt": "q"}]
    with pytest.raises(QueueError, match=rf"ids '{path}' \(row 0\) and '{key_for_id(path)}' \(row 1\) of .* both "
                                         rf"name the file '{key_for_id(path)}'; rename one of them"):
        read_queue(write_queue(tmp_path / "q.parquet", rows))


def test_derived_id_is_stable_and_follows_content():
    raw = {"prompt": "a cat", "seed": 3}
    assert request_id(raw, 4) == request_id(dict(raw), 4)
    assert request_id(raw, 4).startswith("req-000004-")
    assert request_id(raw, 4) != request_id({**raw, "prompt": "a dog"}, 4)
    assert request_id(raw, 4) != request_id(raw, 5)
    assert is_safe_id(request_id(raw, 4))


@pytest.mark.parametrize("size", ["832-480", "832x", "x480", "0x480", "832x0", "-832x480", "832x480x3", "big"])
def test_size_must_be_wxh_with_positive_integers(size):
    with pytest.raises(RequestError, match=rf"size '{size}' is not WxH with positive integers; "
                                           r"write it like '832x480'"):
        resolve({"prompt": "p", "size": size})


def test_size_must_be_text():
    with pytest.raises(RequestError, match=r"size 832 is not WxH"):
        resolve({"prompt": "p", "size": 832})


def test_size_is_parsed_with_spaces_and_capital_x():
    request = resolve({"prompt": "p", "size": " 640 X 368 "})
    assert (request.width, request.height) == (640, 368)


@pytest.mark.parametrize("size", ["4112x480", "832x4112"])
def test_size_must_be_within_the_limits(size):
    with pytest.raises(RequestError, match=rf"size {size} exceeds the limit 4096x4096 \(--max-width/--max-height\)"):
        resolve({"prompt": "p", "size": size})


def test_size_limits_are_configurable():
    with pytest.raises(RequestError, match=r"size 832x480 exceeds the limit 640x640"):
        resolve({"prompt": "p", "size": "832x480"}, limits=Limits(max_width=640, max_height=640))


def test_frame_precedence_num_frames_first():
    request = resolve({"prompt": "p", "num_frames": 33, "seconds": 10, "fps": 16})
    assert (request.num_frames, request.fps) == (33, 16)


def test_frame_precedence_seconds_times_fps():
    request = resolve({"prompt": "p", "seconds": 2, "fps": 16})
    assert (request.num_frames, request.fps) == (33, 16)  # 32 rounded to 4k+1


def test_seconds_alone_uses_fps_24():
    request = resolve({"prompt": "p", "seconds": "3"})  # queues in the video API request format store seconds as text
    assert (request.num_frames, request.fps) == (73, 24)
    assert request.adjustment == "72 frames rounded to 73 (4k+1)"


def test_fps_alone_uses_4_seconds():
    request = resolve({"prompt": "p", "fps": 16})
    assert (request.num_frames, request.fps) == (65, 16)


def test_neither_uses_the_model_default():
    assert resolve({"prompt": "p"}).num_frames == 81
    tiny = ModelRef(name="tiny-random", path=None, class_name="x", tasks=frozenset({"t2v"}), spec=TINY)
    assert resolve({"prompt": "p"}, models=(tiny,)).num_frames == TINY.default_num_frames


@pytest.mark.parametrize("field,value,rule", [
    ("num_frames", 0, ">= 1"), ("num_frames", 2.5, ">= 1"), ("fps", 0, "1..240"), ("fps", 23.976, "1..240"),
    ("num_inference_steps", 0, "1..1000"),
])
def test_whole_number_fields(field, value, rule):
    with pytest.raises(RequestError, match=rf"{field} {value!r} must be a whole number {rule}; fix the {field} column"):
        resolve({"prompt": "p", field: value})


@pytest.mark.parametrize("value", [0, -2])
def test_seconds_must_be_positive(value):
    with pytest.raises(RequestError, match=rf"seconds {value} must be greater than 0"):
        resolve({"prompt": "p", "seconds": value})


@pytest.mark.parametrize("value", ["soon", True, [1]])
def test_numbers_must_be_numbers(value):
    with pytest.raises(RequestError, match=r"seconds .* must be a number; fix the seconds column"):
        resolve({"prompt": "p", "seconds": value})


def test_infinite_numbers_are_refused():
    with pytest.raises(RequestError, match=r"guidance_scale inf must be a finite number"):
        resolve({"prompt": "p", "guidance_scale": math.inf})


def test_guidance_range():
    with pytest.raises(RequestError, match=r"guidance_scale -1.0 is outside 0..100"):
        resolve({"prompt": "p", "guidance_scale": -1.0})


def test_frame_limit():
    with pytest.raises(RequestError, match=r"asks for 2400 frames, over the limit of 1025 \(--max-frames\)"):
        resolve({"prompt": "p", "seconds": 100})


def test_fit_round_rounds_size_and_frames_and_says_so():
    request = resolve({"prompt": "p", "size": "833x470", "num_frames": 80})
    assert (request.width, request.height, request.num_frames) == (832, 464, 81)
    assert request.adjustment == ("size 833x470 rounded to 832x464 (multiples of 16); "
                                  "80 frames rounded to 81 (4k+1)")


def test_fit_round_never_goes_below_one_block():
    request = resolve({"prompt": "p", "size": "4x4", "num_frames": 2})
    assert (request.width, request.height, request.num_frames) == (16, 16, 1)


def test_fit_reject_size():
    with pytest.raises(RequestError, match=r"size 833x470 does not suit wan: width and height must be multiples "
                                           r"of 16; ask for 832x464 or run with --fit round"):
        resolve({"prompt": "p", "size": "833x470"}, fit="reject")


def test_fit_reject_frames():
    with pytest.raises(RequestError, match=r"80 frames does not suit wan: frame counts must be 4k\+1; ask for 81"):
        resolve({"prompt": "p", "num_frames": 80}, fit="reject")


@pytest.mark.parametrize("value,seed", [
    (0, 0), (SEED_LIMIT - 1, 2**64 - 1), (2**63, 2**63), (7.0, 7), (float(2**53 - 1), 2**53 - 1),
    (Decimal("12"), 12),
])
def test_seeds_are_exact_integers_up_to_2_64(value, seed):
    assert resolve({"prompt": "p", "seed": value}).seed == seed


@pytest.mark.parametrize("value", [
    -1, 2**64, "42", "18446744073709551615", 2.5, float(2**53), float(2**53 + 2), 1e20, -3.0, True, Decimal("1.5"), [1],
])
def test_other_seeds_fail_naming_the_value(value):
    rule = (rf"seed {re.escape(repr(value))} is not an exact whole number 0..18446744073709551615: seeds must be "
            r"integers \(floats only when whole and below 2\*\*53, never text\); store the seed column as integers")
    with pytest.raises(RequestError, match=rule):
        resolve({"prompt": "p", "seed": value})


def test_missing_seed_is_drawn_and_marked():
    request = resolve({"prompt": "p"})
    assert (request.seed, request.seed_drawn) == (1234, True)
    assert resolve({"prompt": "p", "seed": 9}).seed_drawn is False


def test_nan_means_not_given():
    request = resolve({"prompt": "p", "seed": float("nan"), "num_frames": float("nan"), "size": None})
    assert request.seed_drawn and request.num_frames == 81 and request.width == 832


def test_response_format():
    assert resolve({"prompt": "p", "response_format": "b64_json"}).response_format == "b64_json"
    with pytest.raises(RequestError, match=r"response_format 'mp4' is not one of url, b64_json"):
        resolve({"prompt": "p", "response_format": "mp4"})


def test_image_requests_go_to_the_image_model():
    assert resolve({"prompt": "p", "input_reference": "x.png"}).model is WAN_I2V


def test_image_request_without_an_image_model():
    with pytest.raises(RequestError, match=r"request is image-to-video \(input_reference given\) but no loaded "
                                           r"model serves that \(loaded: Wan2.1-T2V-1.3B\)"):
        resolve({"prompt": "p", "input_reference": "x.png"}, models=(WAN_T2V,))


def test_text_request_without_a_text_model():
    with pytest.raises(RequestError, match=r"request is text-to-video \(no input_reference\) but no loaded model"):
        resolve({"prompt": "p"}, models=(WAN_I2V,))


def test_named_model_must_be_loaded():
    assert resolve({"prompt": "p", "model": "Wan2.1-T2V-1.3B"}).model is WAN_T2V
    with pytest.raises(RequestError, match=r"model 'sora-2' is not loaded in this run \(loaded: Wan2.1-T2V-1.3B, "
                                           r"Wan2.1-I2V\); leave the model column empty or add --model"):
        resolve({"prompt": "p", "model": "sora-2"})


def test_generic_models_need_even_sides_only():
    generic = replace(WAN_T2V, spec=replace(WAN, family="generic", size_multiple=2, frame_step=1))
    request = resolve({"prompt": "p", "size": "642x362", "num_frames": 50}, models=(generic,))
    assert (request.width, request.height, request.num_frames, request.adjustment) == (642, 362, 50, None)


def test_queue_needs_a_prompt_column(tmp_path):
    queue = write_queue(tmp_path / "q.parquet", [{"text": "a"}])
    with pytest.raises(QueueError, match=r"has no 'prompt' column \(columns: \['text'\]\); add one"):
        read_queue(queue)


def test_queue_ids_must_be_unique(tmp_path):
    queue = write_queue(tmp_path / "q.parquet", [{"id": "a", "prompt": "x"}, {"id": "b", "prompt": "y"},
                                                 {"id": "a", "prompt": "z"}])
    with pytest.raises(QueueError, match=r"id 'a' appears at rows 0 and 2 of .*; ids must be unique"):
        read_queue(queue)


def test_queue_must_exist_and_be_parquet(tmp_path):
    with pytest.raises(QueueError, match=r"does not exist; pass a Parquet file"):
        read_queue(str(tmp_path / "missing.parquet"))
    (tmp_path / "q.parquet").write_text("prompt\nhello\n")
    with pytest.raises(QueueError, match=r"is not a readable Parquet file"):
        read_queue(str(tmp_path / "q.parquet"))


def test_unknown_columns_pass_through(tmp_path):
    queue = read_queue(write_queue(tmp_path / "q.parquet", [{"prompt": "x", "category": "c", "score": 0.5}]))
    assert [f.name for f in queue.passthrough] == ["category", "score"]
    request = resolve_request(queue.rows[0], row=0, models=(WAN_T2V,), limits=Limits(), fit="round",
                              draw_seed=lambda: 1, passthrough_names=["category", "score"])
    assert request.passthrough == {"category": "c", "score": 0.5}
