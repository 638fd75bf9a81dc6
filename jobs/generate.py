"""`make generate`: python -m jobs.generate QUEUE --output OUT --model MODEL [--config jobs/generate.toml]
[flags of `videoproc generate`]."""

from videoproc.generate.command import generate

if __name__ == "__main__":
    generate(prog_name="python -m jobs.generate")
