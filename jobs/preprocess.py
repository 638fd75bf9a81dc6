"""Scheduled entry point: `python -m jobs.preprocess MANIFEST --output OUT [--config jobs/preprocess.toml] [flags]`.

Equivalent to `videoproc preprocess ...`; kept as a module so schedulers and the Makefile need only
the interpreter of the project's environment. Run from the repository root: jobs/ is not installed.
"""

import sys

from videoproc.cli import main

if __name__ == "__main__":
    main(["preprocess", *sys.argv[1:]], prog_name="videoproc")
