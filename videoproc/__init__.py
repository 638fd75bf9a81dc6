"""videoproc: turn video into training data.

The library is importable without click, torch or GPU packages: the preprocess hot path needs only
PyAV, numpy, pyarrow and fsspec; optional stages import their heavy packages where they are used.
"""

__version__ = "0.1.0"
