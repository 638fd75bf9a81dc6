"""The real `videoproc` CLI with test hooks installed first (see tests.hooks):

    python -m tests.hooked_cli [--faults] [--write-delay SECONDS] preprocess MANIFEST --output OUT ...

For tests that run the job in a separate process and need a real crash, hang or slow write there.
"""

from __future__ import annotations

import sys

from tests import hooks
from videoproc.cli import main


def run(argv: list[str]) -> None:
    args = list(argv)
    while args and args[0].startswith("--"):
        flag = args.pop(0)
        if flag == "--faults":
            hooks.install_faults()
        elif flag == "--write-delay":
            hooks.install_write_delay(float(args.pop(0)))
        else:
            sys.exit(f"tests.hooked_cli: unknown hook {flag!r}; expected --faults or --write-delay SECONDS")
    main(args, prog_name="videoproc")


if __name__ == "__main__":
    run(sys.argv[1:])
