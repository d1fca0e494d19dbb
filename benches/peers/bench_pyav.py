"""PyAV peer for benches/video_decode.rs: the same decode work in Python, timed in-process.

usage: bench_pyav.py seq VIDEO THREADS SIZE
       bench_pyav.py random VIDEO THREADS SIZE TUPLES.json
Prints one JSON line: {"frames": N, "seconds": S}.
"""
import json
import sys
import time

import av


def seq(path, threads, size):
    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        s.thread_count = threads
        n = 0
        t0 = time.perf_counter()
        for frame in c.decode(s):
            frame.to_ndarray(width=size, height=size, format="rgb24", interpolation="BILINEAR")
            n += 1
        return n, time.perf_counter() - t0


def random_access(path, threads, size, tuples_json):
    """Seeks to the keyframe before each requested frame and decodes forward to it, as a
    per-frame loader does (e.g. torchvision.io / decord-style random access)."""
    with open(tuples_json) as f:
        spec = json.load(f)
    pts_of = spec["pts"]  # frame index -> pts
    tuples = spec["tuples"]
    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        s.thread_count = threads
        n = 0
        t0 = time.perf_counter()
        for tup in tuples:
            for idx in tup:
                target = pts_of[idx]
                c.seek(target, stream=s, backward=True, any_frame=False)
                for frame in c.decode(s):
                    if frame.pts is not None and frame.pts >= target:
                        frame.to_ndarray(width=size, height=size, format="rgb24", interpolation="BILINEAR")
                        n += 1
                        break
        return n, time.perf_counter() - t0


def main():
    mode, path, threads, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    if mode == "seq":
        n, dt = seq(path, threads, size)
    else:
        n, dt = random_access(path, threads, size, sys.argv[5])
    print(json.dumps({"frames": n, "seconds": dt}))


if __name__ == "__main__":
    main()
