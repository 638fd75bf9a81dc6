"""The three levels of error: bad options stop the run before work starts, a bad video becomes a
failed row, and a storage failure leaves its shard uncommitted for the next run."""


class OptionsError(ValueError):
    """Options that cannot run. Raised before any work, with the value, the rule and the fix."""


class ManifestError(ValueError):
    """A manifest that cannot be planned: unreadable, missing its column, or with duplicate ids."""


# The `error_kind` of a failed row: a short, stable key to count and filter failures by, while the
# `error` column keeps the message for people (README, "Output"). Documented there; keep both in step.
ERROR_KINDS: dict[str, str] = {
    "source.not_found": "the file or object does not exist",
    "source.refused": "the URI is malformed or breaks a source rule (scheme, allowed prefixes or domains, "
                      "private addresses, --local-root, a size cap)",
    "source.read": "fetching or reading the bytes failed (network, HTTP status, permissions, a read error)",
    "video.unreadable": "not a container or stream FFmpeg can read",
    "video.invalid": "readable, but not a usable video (no video stream, no frames, a corrupt index, a bad id)",
    "video.decode": "a sampled frame could not be decoded (with --strict: any decode error)",
    "video.too_large": "the row would need more than --max-alloc allows (frames, sample times, frame bytes)",
    "memory.ceiling": "the worker reached its memory ceiling (--worker-memory)",
    "worker.crashed": "the worker process died (a segfault, an abort, the OOM killer)",
    "worker.timeout": "the video took longer than --timeout",
    "unexpected": "an error nobody foresaw; please report it",
}


class VideoError(Exception):
    """One row cannot be processed. The run records it as a failed row and goes on.

    `kind` is one of ERROR_KINDS: the class's default, or the one passed in."""

    kind = "video.invalid"

    def __init__(self, message: str, *, kind: str | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            if kind not in ERROR_KINDS:
                raise ValueError(f"error kind {kind!r} is not one of {', '.join(ERROR_KINDS)}")
            self.kind = kind

    def __reduce__(self):  # keeps the kind across processes (args alone would lose it)
        return (type(self), self.args, {"kind": self.kind})


class SourceError(VideoError):
    """The bytes of a video could not be fetched or were refused."""

    kind = "source.read"


class SourceNotFound(SourceError):
    """The file or object a row names does not exist."""

    kind = "source.not_found"


class SourceRefused(SourceError):
    """The URI is malformed, or breaks a source rule; nothing was fetched."""

    kind = "source.refused"


class StorageError(RuntimeError):
    """Writing the output failed after retries; the shard stays uncommitted."""


class ResumeError(RuntimeError):
    """An existing output was made with a different plan or different result-changing options."""
