"""LeRobot's loader as the peer of benches/data_loader.rs: R3M tuples (5 frames of one episode,
R3M's sampling rule) from a LeRobot v3.0 dataset through LeRobotDataset's own video path
(`_query_videos`: the episode's offset in the shared mp4, then `decode_video_frames` with
torchcodec, `seek_mode="approximate"`, and LeRobot's decoder cache), then one
RandomResizedCrop(224, scale 0.2-1) per tuple as R3M applies. One process, one torch thread.
usage: bench_lerobot_loader.py ROOT TUPLES SEED
       bench_lerobot_loader.py --files LIST.json TUPLES SEED FPS
The second form draws each tuple from a random file of LIST (one episode per file, as in a dataset
with thousands of mp4 files) through the same `decode_video_frames` and decoder cache, and reports
the RSS growth after each tenth of the tuples ("rss_growth_mb_at": [[tuples, MB], ...]) and the
number of files touched.
Prints JSON: tuples, seconds (wall), cpu_seconds, rss_growth_mb (peak RSS during the loop minus the
RSS after opening the dataset), rss_mb (peak RSS of the process).
"""
import json
import random
import resource
import sys
import time

import torch
from lerobot.datasets.lerobot_dataset import LeRobotDataset
from torchvision import transforms


def status_mb(key):
    with open("/proc/self/status") as f:
        return next((int(line.split()[1]) / 1024 for line in f if line.startswith(key)), 0.0)


def r3m_indices(L, alpha=0.2):
    """R3M's sampling rule: start, end, s0 < s1 < s2 in an episode of L frames."""
    start = random.randint(0, int(alpha * L))
    end = random.randint(int((1 - alpha) * L) - 1, L - 1)
    s1 = random.randint(1, L - 2)
    s0 = random.randint(0, s1 - 1)
    s2 = random.randint(s1 + 1, L - 1)
    return [start, end, s0, s1, s2]


def many_files(list_json, n, seed, fps):
    from lerobot.datasets.video_utils import decode_video_frames

    random.seed(seed)
    with open(list_json) as f:
        files = json.load(f)  # [[path, frames], ...]
    crop = transforms.RandomResizedCrop(224, scale=(0.2, 1.0))
    base = status_mb("VmRSS:")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    touched, at = set(), []
    t0, c0 = time.perf_counter(), time.process_time()
    for k in range(1, n + 1):
        i = random.randrange(len(files))
        path, L = files[i]
        touched.add(i)
        frames = decode_video_frames(path, [j / fps for j in r3m_indices(L)], 1e-4, "torchcodec")
        assert crop(frames).shape == (5, 3, 224, 224)
        if k % max(1, n // 10) == 0:
            at.append([k, max(status_mb("VmHWM:") - base, 0.0), len(touched)])
    print(json.dumps({
        "tuples": n, "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
        "rss_growth_mb_at": at, "files_touched": len(touched),
    }))


def main():
    if sys.argv[1] == "--files":
        torch.set_num_threads(1)
        many_files(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
        return
    root, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(1)
    random.seed(seed)
    ds = LeRobotDataset("bench/clips", root=root, video_backend="torchcodec")
    cam = ds.meta.video_keys[0]
    fps = ds.meta.fps
    lengths = [int(ds.meta.episodes[i]["length"]) for i in range(ds.meta.total_episodes)]
    crop = transforms.RandomResizedCrop(224, scale=(0.2, 1.0))
    alpha = 0.2
    base = status_mb("VmRSS:")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        ep = random.randrange(len(lengths))
        L = lengths[ep]
        start = random.randint(0, int(alpha * L))
        end = random.randint(int((1 - alpha) * L) - 1, L - 1)
        s1 = random.randint(1, L - 2)
        s0 = random.randint(0, s1 - 1)
        s2 = random.randint(s1 + 1, L - 1)
        frames = ds._query_videos({cam: [i / fps for i in (start, end, s0, s1, s2)]}, ep)[cam]
        out = crop(frames)
        assert out.shape == (5, 3, 224, 224), out.shape
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = status_mb("VmHWM:")
    print(json.dumps({
        "tuples": n, "seconds": dt, "cpu_seconds": cpu, "rss_growth_mb": max(peak - base, 0.0),
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
