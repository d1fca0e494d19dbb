#!/usr/bin/env python3
"""Held-out alignment accuracy of an encoder, from the embeddings `r3m embed` wrote.

R3M's `aligned` measure on frames the encoder never trained on: draw R3M tuples (s0 < s1 < s2)
within each clip, and count the tuples where, under -L2 similarity, s1 is nearer to s2 than s0 is,
and s0 is nearer to s1 than to s2. Uniform clips, uniform s1, s0 and s2 uniform on either side,
as r3m-data's sampler. Also reports the mean Spearman correlation between frame index and the
distance from each clip's first frame (how monotone the embedding trajectory is).

usage: alignment.py EMBEDDINGS.parquet [--tuples 4000] [--seed 0] [--json OUT.json]
"""

import argparse
import json
import sys

import numpy as np
import pyarrow.parquet as pq


def load_clips(path, min_frames=3):
    """`r3m embed` Parquet -> (embeddings [N, D] float64, one row-index array per clip in frame
    order). A clip is a video, or a (video, episode_index) pair where the table has episodes
    (LeRobot v3.0 keeps several episodes in one file); clips with fewer than `min_frames` frames
    are left out. Raises OSError/ArrowInvalid for a file that is not such a table."""
    names = pq.read_schema(path).names
    cols = ["video", "frame_index", "embedding"] + (["episode_index"] if "episode_index" in names else [])
    t = pq.read_table(path, columns=cols)
    emb = t.column("embedding").combine_chunks().flatten().to_numpy().astype(np.float64).reshape(t.num_rows, -1)
    frames = t.column("frame_index").to_numpy()
    _, clip = np.unique(np.asarray(t.column("video").to_pylist()), return_inverse=True)
    if "episode_index" in names:
        _, clip = np.unique(np.stack([clip, t.column("episode_index").to_numpy()], 1), axis=0, return_inverse=True)
    order = np.lexsort((frames, clip.ravel()))
    starts = np.flatnonzero(np.r_[True, np.diff(clip.ravel()[order]) != 0, True])
    clips = [order[a:b] for a, b in zip(starts[:-1], starts[1:]) if b - a >= min_frames]
    return emb, clips


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("parquet")
    ap.add_argument("--tuples", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    a = ap.parse_args()
    emb, clips = load_clips(a.parquet)
    if not clips:
        sys.exit(f"{a.parquet}: no clip with 3 or more frames")
    rng = np.random.default_rng(a.seed)
    hits = 0
    for _ in range(a.tuples):
        rows = clips[rng.integers(len(clips))]
        n = len(rows)
        s1 = rng.integers(1, n - 1)
        s0 = rng.integers(0, s1)
        s2 = rng.integers(s1 + 1, n)
        e0, e1, e2 = emb[rows[s0]], emb[rows[s1]], emb[rows[s2]]
        d02, d12, d01 = np.linalg.norm(e2 - e0), np.linalg.norm(e2 - e1), np.linalg.norm(e1 - e0)
        hits += int(d02 > d12 and d01 < d02)
    rhos = []
    for rows in clips:
        d = np.linalg.norm(emb[rows] - emb[rows[0]], axis=1)
        r_idx = np.arange(len(rows))
        r_d = np.argsort(np.argsort(d))
        if np.std(r_d) > 0:
            rhos.append(float(np.corrcoef(r_idx, r_d)[0, 1]))
    out = {
        "file": a.parquet,
        "clips": len(clips),
        "tuples": a.tuples,
        "seed": a.seed,
        "aligned": hits / a.tuples,
        "spearman_progress": float(np.mean(rhos)) if rhos else None,
    }
    print(json.dumps(out))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
