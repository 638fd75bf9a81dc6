"""Job files and flags into GenerateOptions. A job file (TOML) takes the same names as the flags,
with dashes or underscores (`model` a string or a list of them); flags given on the command line
override it. Options left out of both keep the defaults of the option records."""

from __future__ import annotations

from typing import Any

from videoproc.common.checks import parse_bytes, parse_json_object, parse_list
from videoproc.common.errors import OptionsError
from videoproc.common.jobfile import given_flags, load_job_file
from videoproc.generate.options import GenerateOptions, Limits, ReferenceRules

_LIMITS = {"max_width", "max_height", "max_frames"}
# Flag name -> ReferenceRules field.
_REFERENCES = {"local_root": "local_root", "allowed_domains": "allowed_domains",
               "allow_private_hosts": "allow_private_hosts", "allowed_prefixes": "allowed_prefixes",
               "max_reference_bytes": "max_bytes", "reference_timeout": "timeout"}
_PLAIN = {"engine", "device", "dtype", "fit", "progress", "executor", "ray_address", "ray_actors", "break_lock",
          "lock_lease"}
KNOWN = {"output", "model", "storage_options"} | _LIMITS | set(_REFERENCES) | _PLAIN


def load_config(path: str) -> dict[str, Any]:
    return load_job_file(path, known=KNOWN)


def merge_flags(file_values: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """The job file's values overridden by the flags given (None, or () for --model: not given)."""
    return {**file_values, **given_flags(flags)}


def build_options(*, queue: str, values: dict[str, Any]) -> GenerateOptions:
    if not values.get("output"):
        raise OptionsError("--output is required: a local folder or fsspec URL for the videos and records")
    kwargs = {k: values[k] for k in _PLAIN if k in values}
    if "storage_options" in values:
        kwargs["storage_options"] = parse_json_object(values["storage_options"])
    return GenerateOptions(
        queue=queue,
        output=str(values["output"]),
        models=_models(values.get("model", ())),
        limits=Limits(**{k: values[k] for k in _LIMITS if k in values}),
        references=_references(values),
        **kwargs,
    )


def _models(value: Any) -> tuple[str, ...]:
    """--model repeated (a tuple), or a job file's `model`: one path or a list of them."""
    return (value,) if isinstance(value, str) else tuple(str(item) for item in value)


def _references(values: dict[str, Any]) -> ReferenceRules:
    kwargs = {field: values[flag] for flag, field in _REFERENCES.items() if flag in values}
    for name in ("allowed_domains", "allow_private_hosts", "allowed_prefixes"):
        if name in kwargs:
            kwargs[name] = parse_list(kwargs[name])
    if "allowed_domains" in kwargs:
        kwargs["allowed_domains"] = tuple(d.lower() for d in kwargs["allowed_domains"])
    if "max_bytes" in kwargs:
        kwargs["max_bytes"] = parse_bytes(kwargs["max_bytes"])
    return ReferenceRules(**kwargs)
