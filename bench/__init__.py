"""The videoproc benchmark: `make bench` or `python -m bench.run`; see bench/run.py."""
