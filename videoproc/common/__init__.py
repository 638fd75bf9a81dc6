"""The shared layer every stage imports and which imports no stage: storage, errors, option checks,
progress, the output lock, memory bounds, joining a Ray cluster, and the FFmpeg-made test media."""
