"""One video's frames: probe its timeline (a packet scan, or the MP4 index), choose the sample
times, decode exactly those frames and resize them; `process` runs one video start to finish."""
