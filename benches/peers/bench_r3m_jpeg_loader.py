"""Peer for benches/data_loader.rs: R3M's own data path, reading 5 pre-extracted JPEGs per tuple.

As the R3M reference loader does per sample: draw a clip, draw start/end/s0/s1/s2 with its rule,
read the five JPEGs with torchvision.io.read_image, stack them and apply one
RandomResizedCrop(224, scale=(0.2, 1.0)) to the stack (R3M's "rctraj"). One process, one thread.
usage: bench_r3m_jpeg_loader.py JPEG_ROOT TUPLES SEED
Prints JSON: tuples, seconds (wall), cpu_seconds.
"""
import json
import os
import random
import sys
import time

import torch
import torchvision
from torchvision import transforms


def main():
    root, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(1)
    random.seed(seed)
    torch.manual_seed(seed)
    clips = sorted(os.path.join(root, d) for d in os.listdir(root))
    lengths = {c: len(os.listdir(c)) for c in clips}
    crop = transforms.RandomResizedCrop(224, scale=(0.2, 1.0))
    alpha = 0.2
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        c = random.choice(clips)
        L = lengths[c]
        start = random.randint(0, int(alpha * L))
        end = random.randint(int((1 - alpha) * L) - 1, L - 1)
        s1 = random.randint(1, L - 2)
        s0 = random.randint(0, s1 - 1)
        s2 = random.randint(s1 + 1, L - 1)
        frames = [torchvision.io.read_image(os.path.join(c, f"{i + 1:06d}.jpg")) for i in (start, end, s0, s1, s2)]
        out = crop(torch.stack(frames))
        assert out.shape == (5, 3, 224, 224)
    print(json.dumps({"tuples": n, "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}))


if __name__ == "__main__":
    main()
