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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("parquet")
    ap.add_argument("--tuples", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json")
    a = ap.parse_args()
    t = pq.read_table(a.parquet, columns=["video", "episode_index", "frame_index", "embedding"]) \
        if "episode_index" in pq.read_schema(a.parquet).names else pq.read_table(a.parquet, columns=["video", "frame_index", "embedding"])
    videos = t.column("video").to_pylist()
    eps = t.column("episode_index").to_pylist() if "episode_index" in t.column_names else [None] * len(videos)
    frames = np.asarray(t.column("frame_index").to_pylist())
    emb = np.stack(t.column("embedding").to_numpy(zero_copy_only=False)).astype(np.float64)
    clips = {}
    for i, key in enumerate(zip(videos, eps)):
        clips.setdefault(key, []).append(i)
    clips = [sorted(rows, key=lambda r: frames[r]) for rows in clips.values() if len(rows) >= 3]
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
    out = {"file": a.parquet, "clips": len(clips), "tuples": a.tuples, "seed": a.seed,
           "aligned": hits / a.tuples, "spearman_progress": float(np.mean(rhos)) if rhos else None}
    print(json.dumps(out))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
