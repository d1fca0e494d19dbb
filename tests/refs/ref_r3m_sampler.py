"""R3M's frame sampler, as its Ego4D loader draws a tuple, written from its definition.

R3M names a video's frames 1..L (JPEG files numbered from 1) and draws, with numpy's half-open
randint(lo, hi) = uniform on [lo, hi - 1]:

    start = randint(1, 2 + int(alpha * L))          # the language term's first frame
    end   = randint(int((1 - alpha) * L) - 1, L)    # its last frame
    s1    = randint(2, L)
    s0    = randint(1, s1)
    s2    = randint(s1, L + 1)

This script draws N tuples for each clip length given and prints, per length, the range (min, max)
of every slot as 0-based frame indices (subtract 1), the convention r3m uses.

    python3 tests/refs/ref_r3m_sampler.py N L1 L2 ...
"""

import json
import sys

import numpy as np

ALPHA = 0.2


def draw(rng, n_frames):
    start = rng.integers(1, 2 + int(ALPHA * n_frames))
    end = rng.integers(int((1 - ALPHA) * n_frames) - 1, n_frames)
    s1 = rng.integers(2, n_frames)
    s0 = rng.integers(1, s1)
    s2 = rng.integers(s1, n_frames + 1)
    return [int(v) - 1 for v in (start, end, s0, s1, s2)]


def main():
    n = int(sys.argv[1])
    rng = np.random.default_rng(0)
    out = {}
    for n_frames in map(int, sys.argv[2:]):
        t = np.array([draw(rng, n_frames) for _ in range(n)])
        out[str(n_frames)] = {
            name: [int(t[:, k].min()), int(t[:, k].max())]
            for k, name in enumerate(["start", "end", "s0", "s1", "s2"])
        }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
