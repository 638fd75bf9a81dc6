"""The three levels of error: bad options stop the run before work starts, a bad video becomes a
failed row, and a storage failure leaves its shard uncommitted for the next run."""


class OptionsError(ValueError):
    """Options that cannot run. Raised before any work, with the value, the rule and the fix."""


class ManifestError(ValueError):
    """A manifest that cannot be planned: unreadable, missing its column, or with duplicate ids."""


class VideoError(Exception):
    """One row cannot be processed. The run records it as a failed row and goes on."""


class SourceError(VideoError):
    """The bytes of a video could not be fetched or were refused."""


class StorageError(RuntimeError):
    """Writing the output failed after retries; the shard stays uncommitted."""


class ResumeError(RuntimeError):
    """An existing output was made with a different plan or different result-changing options."""
