#!/usr/bin/env python3
"""Does a frozen encoder see the objects of a task? Linear-probe R² of the simulator's object and
goal positions from its embeddings, on episodes the probe was not fitted on.

usage: probe_state.py --data DATASET --task TASK [--size 112] NAME=CHECKPOINT ... [random]

For each encoder (an r3m checkpoint directory, or `random`: a torchvision ResNet18 at its seeded
random init), embeds every frame of TASK's episodes in DATASET (a generator dataset with
`observation.environment_state`) through r3m's frozen-encoder transform (shorter side → 8/7·size,
centre crop), fits ridge regression (closed form, features standardised, alpha chosen on the fit
episodes by leave-one-episode-out) from embedding to the 17 labels the positive control is
trained on (object poses obs[4:18], goal obs[36:39]) on the first 2/3 of the episodes, and
reports R² on the rest per label group (mean over dimensions that vary in both parts). One
Markdown row per encoder on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_positive_control as pc  # noqa: E402


def load_encoder(spec: str, seed: int):
    import torch
    import torchvision
    from safetensors.torch import load_file

    model = torchvision.models.resnet18(weights=None)
    model.fc = torch.nn.Identity()
    if spec == "random":
        torch.manual_seed(seed)
        model = torchvision.models.resnet18(weights=None)
        model.fc = torch.nn.Identity()
    else:
        missing, unexpected = model.load_state_dict(load_file(str(Path(spec) / "model.safetensors")), strict=False)
        if unexpected or [m for m in missing if not m.startswith("fc.")]:
            raise SystemExit(f"{spec}: not a resnet18 trunk (missing {missing}, unexpected {unexpected})")
    return model.eval()


def embed(model, frames) -> np.ndarray:
    import torch

    mean = torch.tensor(pc.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(pc.IMAGENET_STD).view(1, 3, 1, 1)
    out = []
    with torch.no_grad():
        for s in range(0, len(frames), 128):
            out.append(model(pc.to_input(torch.from_numpy(frames[s : s + 128]), mean, std)).numpy())
    return np.concatenate(out)


def ridge(x, y, alpha):
    d = x.shape[1]
    return np.linalg.solve(x.T @ x + alpha * np.eye(d), x.T @ y)


def ridge_loo(x, y, ep_of, eps, alphas=(1.0, 10.0, 100.0, 1000.0, 10000.0), cols=None):
    """Ridge weights fitted on the frames of episodes `eps`, with the alpha of least
    leave-one-episode-out squared error (over columns `cols` of y, all by default)."""
    fit = np.isin(ep_of, eps)
    best = None
    for alpha in alphas:
        errs = []
        for held in eps:
            tr, te = fit & (ep_of != held), ep_of == held
            err = (x[te] @ ridge(x[tr], y[tr], alpha) - y[te]) ** 2
            errs.append((err if cols is None else err[:, cols]).mean())
        if best is None or np.mean(errs) < best[0]:
            best = (float(np.mean(errs)), alpha)
    return ridge(x[fit], y[fit], best[1]), best[1]


def r2_groups(pred, y, vary) -> dict:
    res = {}
    for g, idx in pc.GROUPS.items():
        dims = [i for i in idx if vary[i]]
        if not dims:
            continue
        ss_res = ((pred[:, dims] - y[:, dims]) ** 2).sum(0)
        ss_tot = ((y[:, dims] - y[:, dims].mean(0)) ** 2).sum(0)
        res[g] = float(np.mean(1 - ss_res / ss_tot))
    return res


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--task", required=True)
    p.add_argument("--size", type=int, default=112)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("encoders", nargs="+", help="NAME=CHECKPOINT or random")
    a = p.parse_args()
    import torch

    torch.set_num_threads(2)
    frames, labels, ep_of, episodes = pc.load_dataset(a.data, a.size, 1)
    keep = [n for n, ep in enumerate(episodes) if ep.get("metaworld_task") == a.task]
    if len(keep) < 3:
        raise SystemExit(f"{a.data}: {len(keep)} episodes of {a.task}, need 3")
    mask = np.isin(ep_of, keep)
    frames, labels, ep_of = frames[mask], labels[mask], ep_of[mask]
    fit_eps = keep[: 2 * len(keep) // 3]
    fit = np.isin(ep_of, fit_eps)
    # dimensions that vary among both the fit and the test frames (a constant goal has no R²)
    vary = (labels[fit].std(0) > 1e-4) & (labels[~fit].std(0) > 1e-4)
    for spec in a.encoders:
        name, _, path = spec.partition("=")
        model = load_encoder(path or name, a.seed)
        e = embed(model, frames)
        mu, sd = e[fit].mean(0), e[fit].std(0) + 1e-6
        x = np.concatenate([(e - mu) / sd, np.ones((len(e), 1))], 1)
        ym = labels[fit].mean(0)
        y = labels - ym
        # alpha by leave-one-episode-out on the fit episodes
        w, alpha = ridge_loo(x, y, ep_of, fit_eps, cols=vary)
        r2 = r2_groups(x[~fit] @ w, y[~fit], vary)
        cells = " | ".join(f"{g} {v:.2f}" for g, v in r2.items())
        print(f"| {a.task} | {name} | {cells} | alpha {alpha:g} |")
        print(json.dumps({"task": a.task, "encoder": name, "r2": r2, "alpha": alpha}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
