"""The preprocess run: read the manifest, plan shards, run the videos on a process pool or a Ray
cluster, write and commit Parquet shards, record the run state for resume, and summarise it."""
