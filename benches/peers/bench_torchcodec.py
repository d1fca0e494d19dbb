"""torchcodec peer for benches/video_decode.rs: the same decode work through torchcodec's
VideoDecoder (CPU), as LeRobot uses it (`seek_mode="approximate"`, `get_frames_at`), timed
in-process. Frames come out as 224x224 RGB uint8 through torchcodec's decoder-native Resize
(bilinear, in FFmpeg), the size and pixel format r3m-video produces.

usage: bench_torchcodec.py seq VIDEO THREADS SIZE
       bench_torchcodec.py tuples VIDEO THREADS SIZE TUPLES.json    one get_frames_at per tuple
       bench_torchcodec.py frames VIDEO THREADS SIZE TUPLES.json    all tuples' frames in one call
       bench_torchcodec.py many LIST.json THREADS SIZE              LIST: [[video, [frames...]], ...];
                                                                   a decoder per video, as for many
                                                                   short episode files
       bench_torchcodec.py dump VIDEO SIZE OUT.raw FRAME...         frames as raw RGB, for the pixel check
SIZE 0 keeps the native size (no resize).
Prints one JSON line: {"frames", "seconds", "cpu_seconds", "rss_growth_mb"}; cpu_seconds is the
process's user + system time over the work (all threads), rss_growth_mb its peak RSS during the
work minus its RSS before (the interpreter and torch are loaded before).
"""
import json
import resource
import sys
import time

from torchcodec.decoders import VideoDecoder
from torchcodec.transforms import Resize


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def decoder(path, threads, size):
    return VideoDecoder(
        path, seek_mode="approximate", num_ffmpeg_threads=threads,
        transforms=[Resize((size, size))] if size else None, dimension_order="NHWC",
    )


def main():
    mode = sys.argv[1]
    if mode == "dump":
        path, size, out = sys.argv[2], int(sys.argv[3]), sys.argv[4]
        frames = [int(x) for x in sys.argv[5:]]
        data = decoder(path, 1, size).get_frames_at(frames).data
        with open(out, "wb") as f:
            f.write(data.contiguous().numpy().tobytes())
        return
    threads, size = int(sys.argv[3]), int(sys.argv[4])
    base = rss_mb()
    with open("/proc/self/clear_refs", "w") as f:  # peak RSS from here
        f.write("5")
    t0, c0 = time.perf_counter(), time.process_time()
    n = 0
    if mode == "seq":
        d = decoder(sys.argv[2], threads, size)
        total = d.metadata.num_frames
        for start in range(0, total, 64):
            n += d.get_frames_in_range(start, min(start + 64, total)).data.shape[0]
    elif mode in ("tuples", "frames"):
        with open(sys.argv[5]) as f:
            tuples = json.load(f)["tuples"]
        d = decoder(sys.argv[2], threads, size)
        if mode == "tuples":
            for t in tuples:
                n += d.get_frames_at(t).data.shape[0]
        else:
            n += d.get_frames_at(sorted(i for t in tuples for i in t)).data.shape[0]
    elif mode == "many":
        with open(sys.argv[2]) as f:
            jobs = json.load(f)
        for video, frames in jobs:
            n += decoder(video, threads, size).get_frames_at(frames).data.shape[0]
    else:
        sys.exit(f"unknown mode {mode}")
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open("/proc/self/status") as f:
        hwm = next((int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:")), peak)
    print(json.dumps({"frames": n, "seconds": dt, "cpu_seconds": cpu, "rss_growth_mb": max(hwm - base, 0.0)}))


if __name__ == "__main__":
    main()
