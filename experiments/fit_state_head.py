#!/usr/bin/env python3
"""Positive control in its most usable form: a frozen trunk plus a linear head that reads the
scene state off the image, written as an r3m checkpoint whose embedding IS the predicted state.

usage: fit_state_head.py --data DATASET --task TASK --trunk CHECKPOINT|random --out OUT [--size 112]

The supervised positive control (experiments/train_positive_control.py) gives the policy its 512-d
trunk; a linear probe shows that trunk (and a random one) encodes where the objects are, yet
behaviour cloning from 10 demos does not do better with it than with a random trunk. This script
asks the next question: does the evaluation reward an encoder whose features are the object and
goal positions themselves? It embeds every frame of TASK's episodes in DATASET (episodes made for
this purpose, from layout seeds disjoint from the demos' and the evaluation rollouts', e.g.
`metaworld_demos.py --seed 700000`) with the frozen trunk through r3m's evaluation transform
(shorter side → 8/7·size, centre crop), fits ridge regression to the 17 labels the positive
control is trained on (object poses obs[4:18], goal obs[36:39]; alpha by leave-one-episode-out),
reports held-out R² (fit on 2/3 of the episodes, tested on the rest), refits on all episodes and
writes OUT: model.safetensors = the trunk + `proj.weight`/`proj.bias` (512 → 17, the
standardisation folded in, predictions in the labels' own units) and config.json with
`"proj_dim": 17`, so `r3m eval bc --encoders NAME=OUT` (and `r3m embed`) use the 17 predictions as
the embedding. Labels are privileged simulator state: this is a control for the evaluation, not a
representation anyone could pretrain.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import probe_state as ps  # noqa: E402
import train_positive_control as pc  # noqa: E402

ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="generator dataset with observation.environment_state")
    p.add_argument("--task", required=True)
    p.add_argument("--trunk", required=True, help="r3m checkpoint directory of a resnet18 trunk, or 'random'")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--seed", type=int, default=0, help="torchvision init seed for --trunk random")
    a = p.parse_args()
    import torch
    from safetensors.torch import save_file

    torch.set_num_threads(2)
    t0 = time.time()
    frames, labels, ep_of, episodes = pc.load_dataset(a.data, a.size, 1)
    keep = [n for n, ep in enumerate(episodes) if ep.get("metaworld_task") == a.task]
    if len(keep) < 3:
        raise SystemExit(f"{a.data}: {len(keep)} episodes of {a.task}, need 3")
    m = np.isin(ep_of, keep)
    frames, labels, ep_of = frames[m], labels[m], ep_of[m]
    model = ps.load_encoder(a.trunk, a.seed)
    e = ps.embed(model, frames).astype(np.float64)
    mu, sd = e.mean(0), e.std(0) + 1e-6
    x = np.concatenate([(e - mu) / sd, np.ones((len(e), 1))], 1)
    ym = labels.mean(0)
    y = labels - ym
    # held-out R² of a head fitted on the first 2/3 of the episodes
    fit_eps, test_eps = keep[: 2 * len(keep) // 3], keep[2 * len(keep) // 3 :]
    w, alpha = ps.ridge_loo(x, y, ep_of, fit_eps, ALPHAS)
    test = np.isin(ep_of, test_eps)
    vary = (labels[~test].std(0) > 1e-4) & (labels[test].std(0) > 1e-4)
    r2 = ps.r2_groups(x[test] @ w, y[test], vary)
    print(f"{a.task} {a.trunk}: held-out R² " + ", ".join(f"{g} {v:.3f}" for g, v in r2.items()) + f" (alpha {alpha:g})")
    # the head written: fitted on every episode
    w, alpha_all = ps.ridge_loo(x, y, ep_of, keep, ALPHAS)
    # pred = ((e - mu)/sd) @ W + b + ym  =  e @ (W/sd) + (b + ym - (mu/sd) @ W)
    wt = w[:-1] / sd[:, None]
    bias = w[-1] + ym - (mu / sd) @ w[:-1]
    state = pc.trunk_state(model)
    state["proj.weight"] = torch.from_numpy(wt.T.copy()).float().contiguous()
    state["proj.bias"] = torch.from_numpy(bias.copy()).float().contiguous()
    config = {
        "format": "r3m-checkpoint-1",
        "arch": "resnet18",
        "dim": int(wt.shape[1]),
        "proj_dim": int(wt.shape[1]),
        "size": a.size,
        "step": 0,
        "preprocess": pc.PREPROCESS,
        "source": {
            "positive_control": True,
            "state_head": True,
            "trunk": a.trunk,
            "dataset": str(a.data.resolve()),
            "task": a.task,
            "labels": pc.LABEL_SOURCE,
            "label_names": pc._label_names(),
            "episodes": len(keep),
            "frames": int(len(frames)),
            "alpha": alpha_all,
            "heldout_r2": r2,
            "heldout_alpha": alpha,
            "seconds": round(time.time() - t0, 1),
        },
    }
    tmp = a.out.parent / f".{a.out.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(state, str(tmp / "model.safetensors"))
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    if a.out.exists():
        shutil.rmtree(a.out)
    tmp.rename(a.out)
    print(f"wrote {a.out} ({len(keep)} episodes, {len(frames)} frames, alpha {alpha_all:g}, {time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
