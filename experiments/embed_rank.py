"""Effective rank of `r3m embed` Parquet files: is an encoder's embedding collapsed?

For each file: the effective rank (exp of the entropy of the normalised squared singular values of
the centred embeddings; 1 = every frame on one line, D = spread evenly over all D dimensions) and
the top principal component's share of the variance, over all frames and within each clip (the
clip's own mean removed), averaged over clips. A collapsed encoder (BYOL's failure mode) shows
rank near 1 within clips as well as across them.

usage: python experiments/embed_rank.py EMBEDDINGS.parquet [...]
"""

import sys

import numpy as np
from alignment import load_clips  # the same clips (video, or video × episode) as the alignment score


def erank(x: np.ndarray) -> tuple[float, float]:
    s = np.linalg.svd(x - x.mean(0), compute_uv=False) ** 2
    if s.sum() == 0:
        return 0.0, 1.0
    p = s / s.sum()
    nz = p[p > 0]
    return float(np.exp(-(nz * np.log(nz)).sum())), float(p[0])


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    for path in paths:
        try:
            emb, clips = load_clips(path)
        except Exception as e:  # noqa: BLE001 - any unreadable file is reported by name
            print(f"{path}: not an r3m embed table ({e})", file=sys.stderr)
            return 1
        per_clip = [erank(emb[rows]) for rows in clips]
        r, p1 = erank(emb)
        cr, cp = np.mean(per_clip, axis=0) if per_clip else (float("nan"), float("nan"))
        print(
            f"{path}: {len(emb)} frames, {emb.shape[1]} dims, {len(per_clip)} clips; "
            f"all frames: rank {r:.1f}, top PC {p1:.2f}; within a clip: rank {cr:.1f}, top PC {cp:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
