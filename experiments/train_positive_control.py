#!/usr/bin/env python3
"""Supervised positive control: a ResNet-18 trained to read the scene state off the camera image.

An encoder that is *told* where things are gives the frozen-encoder behaviour-cloning evaluation
an upper reference among image encoders (below the "state" row, which feeds the policy the true
observation): if BC on this encoder is not clearly better than on a random or pretrained one,
the evaluation cannot tell encoders apart.

Data: a LeRobot v2.1 dataset from python/r3m_tools/metaworld_demos.py (e.g. the PC_OUT of
experiments/make_eval_data.sh: the Meta-World tasks that are NOT evaluated). Frames are decoded from
its mp4s with PyAV as rgb24; labels come from `observation.environment_state` in its parquet
files: obs[4:18] (object 1 position + quaternion, object 2 position + quaternion) and
obs[36:39] (goal position), 17 values, standardised per dimension with the training frames'
mean/std; dimensions with (near) zero spread (absent objects, tasks that report no orientation)
are left out of the loss.

Model: torchvision resnet18, random init (no downloads), fc -> Linear(512, 17).
Input: exactly r3m's frozen-encoder evaluation transform (crates/r3m-video Resize::eval): the
shorter side to int(size*8/7) (bilinear; a no-op for 128 px frames at the default size 112),
centre crop `size` (torchvision's rounding of the offset), u8 -> /255 -> ImageNet mean/std.
Training frames additionally get DrQ's random shift (pad 4 with edge replication, random crop
back to `size`). Adam, MSE on the standardised labels.

Validation: ~`--val-frac` of the episodes of every task are held out (at least one per task with
two or more episodes); R^2 per label group (object 1 position, object 1 quaternion, object 2,
goal; the mean over dimensions that vary in the validation frames) and the validation MSE (in
standardised units) every `--eval-every` steps on up to `--val-frames` frames and on all of them
at the end.

Resumable: every `--save-every` steps the training state (model, optimiser, RNG, log) goes to
OUT/.train-state.pt; rerunning with the same arguments continues from it (`--steps` may grow).

Output: OUT is written atomically (temporary directory renamed) as an r3m checkpoint directory,
like python/r3m_tools/convert_r3m.py: model.safetensors (the torchvision trunk: no fc.*, no
num_batches_tracked, float32, contiguous, BN running statistics included) and config.json
({"format": "r3m-checkpoint-1", "arch": "resnet18", "dim": 512, "step", "size", "preprocess",
"source": {"positive_control": true, ...}}), plus OUT/positive_control.json with the validation
figures. A finished OUT with the same arguments is left alone.

    MUJOCO_GL=egl python experiments/train_positive_control.py --data runs/eval/pc-data \
        --out runs/eval/positive-control --steps 2000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

STATE_FILE = ".train-state.pt"
LABEL_SLICES = [(4, 18), (36, 39)]
LABEL_SOURCE = "environment_state[4:18]+[36:39]"
GROUPS = {"obj1_pos": range(0, 3), "obj1_quat": range(3, 7), "obj2": range(7, 14), "goal": range(14, 17)}
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
PREPROCESS = {"input": "u8 RGB", "scale": 255.0, "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
SHIFT_PAD = 4
MIN_STD = 1e-6


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# Data


def eval_transform(frame, size: int):
    """r3m's evaluation transform on one RGB u8 (H, W, 3) array -> (size, size, 3) u8 array."""
    import torch
    import torch.nn.functional as F

    h, w = frame.shape[:2]
    short = max(size * 8 // 7, size)
    if min(h, w) != short:
        rw, rh = (short, short * h // w) if w <= h else (short * w // h, short)
        rw, rh = max(rw, size), max(rh, size)
        x = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float()
        x = F.interpolate(x, size=(rh, rw), mode="bilinear", align_corners=False, antialias=True)
        frame = x[0].round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
        h, w = rh, rw
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return np.ascontiguousarray(frame[top : top + size, left : left + size])


def decode_rgb(path: Path) -> list:
    import av

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        return [f.to_ndarray(format="rgb24") for f in c.decode(stream)]


def load_dataset(root: Path, size: int, stride: int):
    """-> frames (N, size, size, 3) u8, labels (N, 17) f32, episode id per frame, episode list."""
    import pyarrow.parquet as pq

    info = json.loads((root / "meta/info.json").read_text())
    if info.get("codebase_version") != "v2.1":
        raise SystemExit(f"{root}: needs a LeRobot v2.1 dataset (got {info.get('codebase_version')})")
    feats = info["features"]
    if "observation.environment_state" not in feats:
        raise SystemExit(f"{root}: no observation.environment_state (regenerate with python/r3m_tools/metaworld_demos.py)")
    video_keys = [k for k, v in feats.items() if v.get("dtype") == "video"]
    if len(video_keys) != 1:
        raise SystemExit(f"{root}: expected one video feature, found {video_keys}")
    key = video_keys[0]
    chunks = info.get("chunks_size", 1000)
    episodes = [json.loads(line) for line in (root / "meta/episodes.jsonl").read_text().splitlines() if line]
    frames, labels, ep_of = [], [], []
    t0 = time.time()
    for n, ep in enumerate(episodes):
        i = ep["episode_index"]
        chunk = i // chunks
        table = pq.read_table(root / info["data_path"].format(episode_chunk=chunk, episode_index=i))
        state = np.stack(table.column("observation.environment_state").to_numpy(zero_copy_only=False))
        video = decode_rgb(root / info["video_path"].format(episode_chunk=chunk, video_key=key, episode_index=i))
        if len(video) != len(state):
            raise SystemExit(f"{root}: episode {i} has {len(video)} video frames and {len(state)} rows")
        for t in range(0, len(state), stride):
            frames.append(eval_transform(video[t], size))
            labels.append(np.concatenate([state[t, a:b] for a, b in LABEL_SLICES]))
            ep_of.append(n)
        if (n + 1) % 50 == 0 or n + 1 == len(episodes):
            log(f"loaded {n + 1}/{len(episodes)} episodes, {len(frames)} frames ({time.time() - t0:.0f}s)")
    return np.stack(frames), np.asarray(labels, np.float32), np.asarray(ep_of), episodes


def split_episodes(episodes: list[dict], val_frac: float, seed: int) -> set[int]:
    """Held-out episode positions: round(val_frac * n) of each task's n episodes (>= 1 if n >= 2)."""
    by_task: dict[str, list[int]] = {}
    for n, ep in enumerate(episodes):
        by_task.setdefault(ep.get("metaworld_task") or ep["tasks"][0], []).append(n)
    rng = np.random.default_rng(seed)
    val = set()
    for task in sorted(by_task):
        idx = by_task[task]
        k = int(round(val_frac * len(idx)))
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        else:
            k = 0
        val.update(int(i) for i in rng.permutation(idx)[:k])
    return val


# ------------------------------------------------------------------------------------------------
# Model


def build_model(n_out: int):
    import torch.nn as nn
    import torchvision

    model = torchvision.models.resnet18(weights=None)
    model.fc = nn.Linear(512, n_out)
    return model


def to_input(batch_u8, mean, std):
    """(B, H, W, 3) u8 tensor -> normalised float (B, 3, H, W)."""
    x = batch_u8.permute(0, 3, 1, 2).float().div_(255.0)
    return (x - mean) / std


def random_shift(batch_u8, rng: np.random.Generator, pad: int = SHIFT_PAD):
    """DrQ's random shift: replicate-pad by `pad`, crop back at a random offset per image."""
    import torch.nn.functional as F

    n, h, w, _ = batch_u8.shape
    x = batch_u8.permute(0, 3, 1, 2).float()
    x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    offs = rng.integers(0, 2 * pad + 1, size=(n, 2))
    out = x.new_empty((n, 3, h, w))
    for i, (dy, dx) in enumerate(offs):
        out[i] = x[i, :, dy : dy + h, dx : dx + w]
    return out.permute(0, 2, 3, 1)  # back to (B, H, W, 3), float 0..255


def evaluate(model, frames, labels_std, mask, mean, std, batch: int = 256) -> dict:
    import torch

    model.eval()
    preds = []
    with torch.no_grad():
        for s in range(0, len(frames), batch):
            x = to_input(torch.from_numpy(frames[s : s + batch]), mean, std)
            preds.append(model(x).numpy())
    model.train()
    pred = np.concatenate(preds)
    y = labels_std
    err = (pred - y) ** 2
    mse = float((err * mask).sum(1).mean() / max(mask.sum(), 1))
    sst = ((y - y.mean(0)) ** 2).sum(0)
    sse = err.sum(0)
    valid = (mask > 0) & (sst > 1e-8 * len(y))
    r2_dim = np.where(valid, 1.0 - sse / np.maximum(sst, 1e-30), np.nan)
    groups = {}
    for name, idx in GROUPS.items():
        v = [r2_dim[i] for i in idx if valid[i]]
        groups[name] = float(np.mean(v)) if v else None
    allv = r2_dim[valid]
    groups["all"] = float(np.mean(allv)) if len(allv) else None
    per_dim = [None if np.isnan(r) else float(r) for r in r2_dim]
    return {"mse": mse, "r2": groups, "r2_per_dim": per_dim, "frames": len(y)}


def fmt_eval(e: dict) -> str:
    r2 = " ".join(f"{k} {'-' if v is None else f'{v:.3f}'}" for k, v in e["r2"].items())
    return f"val MSE {e['mse']:.4f} R2: {r2} ({e['frames']} frames)"


def trunk_state(model) -> dict:
    return {
        k: v.detach().float().contiguous().clone()
        for k, v in model.state_dict().items()
        if not k.startswith("fc.") and not k.endswith("num_batches_tracked")
    }


# ------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", required=True, help="LeRobot v2.1 dataset from metaworld_demos.py")
    p.add_argument("--out", required=True, help="r3m checkpoint directory to write")
    p.add_argument("--size", type=int, default=112, help="encoder input side (frames: short side -> size*8/7)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-frac", type=float, default=0.1, help="fraction of each task's episodes held out")
    p.add_argument("--frame-stride", type=int, default=1, help="use every n-th frame of each episode")
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--val-frames", type=int, default=1024, help="frames for the periodic evaluations")
    p.add_argument("--save-every", type=int, default=250)
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--keep-state", action="store_true", help=f"keep OUT/{STATE_FILE} after finishing")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    a = p.parse_args(argv)
    if a.size < 8 or a.steps < 1 or a.batch < 1 or a.threads < 1 or a.frame_stride < 1:
        p.error("--size >= 8, --steps, --batch, --threads, --frame-stride >= 1")
    if not 0 <= a.val_frac < 1:
        p.error("--val-frac must be in [0, 1)")
    return a


def fingerprint(a) -> dict:
    """What must match for a saved state to be continued (not --steps, threads, logging)."""
    keys = ["size", "batch", "lr", "weight_decay", "seed", "val_frac", "frame_stride"]
    fp = {k: getattr(a, k) for k in keys}
    fp["data"] = str(Path(a.data).resolve())
    info = Path(a.data) / "meta/info.json"
    fp["data_info_sha256"] = hashlib.sha256(info.read_bytes()).hexdigest() if info.exists() else None
    return fp


def write_checkpoint(out: Path, model, state_path: Path | None, config: dict, report: dict, keep_state: bool):
    from safetensors.torch import save_file

    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(trunk_state(model), str(tmp / "model.safetensors"))
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (tmp / "positive_control.json").write_text(json.dumps(report, indent=2) + "\n")
    if keep_state and state_path is not None and state_path.exists():
        shutil.copy2(state_path, tmp / STATE_FILE)
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old)


def main(argv=None) -> int:
    a = parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    out = Path(a.out).resolve()
    data = Path(a.data).resolve()
    fp = fingerprint(a)

    done = out / "config.json"
    if done.exists():
        try:
            cfg = json.loads(done.read_text())
            src = cfg.get("source", {})
            if src.get("fingerprint") == fp and cfg.get("step") == a.steps:
                log(f"{out}: already trained with these arguments ({a.steps} steps); nothing to do")
                return 0
        except ValueError:
            pass

    torch.manual_seed(a.seed)
    frames, labels, ep_of, episodes = load_dataset(data, a.size, a.frame_stride)
    val_eps = split_episodes(episodes, a.val_frac, a.seed)
    is_val = np.isin(ep_of, sorted(val_eps))
    train_idx, val_idx = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    if len(train_idx) == 0:
        raise SystemExit("no training frames")
    lab_mean = labels[train_idx].mean(0)
    lab_std = labels[train_idx].std(0)
    mask = (lab_std > MIN_STD).astype(np.float32)
    lab_std_safe = np.where(mask > 0, lab_std, 1.0).astype(np.float32)
    labels_std = ((labels - lab_mean) / lab_std_safe).astype(np.float32)
    tasks = sorted({ep.get("metaworld_task", ep["tasks"][0]) for ep in episodes})
    log(
        f"{data}: {len(episodes)} episodes of {len(tasks)} tasks, {len(frames)} frames at {a.size}px; "
        f"train {len(train_idx)} frames / val {len(val_idx)} frames ({len(val_eps)} episodes); "
        f"{int(mask.sum())} of {mask.size} label dims vary"
    )
    val_sub = val_idx
    if len(val_idx) > a.val_frames:
        val_sub = val_idx[np.linspace(0, len(val_idx) - 1, a.val_frames).round().astype(int)]

    device = torch.device(a.device)
    model = build_model(labels.shape[1]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    mask_t = torch.from_numpy(mask).to(device)
    labels_t = torch.from_numpy(labels_std)
    frames_t = torch.from_numpy(frames)  # shares memory
    rng = np.random.default_rng(a.seed)
    step, seconds, history = 0, 0.0, []

    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE_FILE
    if state_path.exists():
        st = torch.load(state_path, map_location="cpu", weights_only=False)
        if st.get("fingerprint") != fp:
            raise SystemExit(f"{state_path} was saved with other arguments or data; remove it to start over")
        if st["step"] > a.steps:
            raise SystemExit(f"{state_path} is at step {st['step']} > --steps {a.steps}")
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        rng.bit_generator.state = st["rng"]
        torch.set_rng_state(st["torch_rng"])
        step, seconds, history = st["step"], st["seconds"], st["history"]
        log(f"resumed from {state_path} at step {step}")

    def save_state():
        tmp = state_path.with_name(STATE_FILE + ".tmp")
        torch.save(
            {
                "fingerprint": fp,
                "step": step,
                "seconds": seconds,
                "history": history,
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
            },
            tmp,
        )
        os.replace(tmp, state_path)

    def periodic_eval():
        if len(val_sub) == 0:
            return
        e = evaluate(model, frames[val_sub], labels_std[val_sub], mask, mean, std)
        history.append({"step": step, "val_mse": e["mse"], "val_r2": e["r2"]})
        log(f"step {step}: {fmt_eval(e)}")

    model.train()
    t_log, loss_acc, n_acc, step0 = time.time(), 0.0, 0, step
    while step < a.steps:
        t0 = time.time()
        idx = train_idx[rng.integers(0, len(train_idx), size=a.batch)]
        xb = random_shift(frames_t[idx], rng)
        x = ((xb.permute(0, 3, 1, 2) / 255.0).to(device) - mean) / std
        y = labels_t[idx].to(device)
        pred = model(x)
        loss = (((pred - y) ** 2) * mask_t).sum(1).mean() / mask_t.sum().clamp(min=1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        seconds += time.time() - t0
        loss_acc += loss.item()
        n_acc += 1
        if step % a.log_every == 0 or step == a.steps:
            dt = (time.time() - t_log) / max(1, step - step0)
            log(
                f"step {step}/{a.steps} loss {loss_acc / n_acc:.4f} {dt:.2f} s/step "
                f"(ETA {dt * (a.steps - step) / 60:.1f} min)"
            )
            t_log, loss_acc, n_acc, step0 = time.time(), 0.0, 0, step
        if step % a.eval_every == 0 and step < a.steps:
            periodic_eval()
            t_log = time.time()
            step0 = step
        if step % a.save_every == 0 and step < a.steps:
            save_state()

    save_state()
    final = evaluate(model, frames[val_idx], labels_std[val_idx], mask, mean, std) if len(val_idx) else None
    if final:
        history.append({"step": step, "val_mse": final["mse"], "val_r2": final["r2"]})
        log(f"final (step {step}): {fmt_eval(final)}")
    label_names = _label_names()
    report = {
        "dataset": str(data),
        "tasks": tasks,
        "labels": LABEL_SOURCE,
        "label_names": label_names,
        "label_mean": lab_mean.tolist(),
        "label_std": lab_std.tolist(),
        "label_dims_in_loss": [n for n, m in zip(label_names, mask) if m > 0],
        "train_frames": int(len(train_idx)),
        "val_frames": int(len(val_idx)),
        "val_episodes": sorted(int(episodes[i]["episode_index"]) for i in val_eps),
        "steps": step,
        "seconds": round(seconds, 1),
        "seconds_per_step": round(seconds / max(step, 1), 4),
        "val_mse": final["mse"] if final else None,
        "val_r2": final["r2"] if final else None,
        "val_r2_per_dim": dict(zip(label_names, final["r2_per_dim"])) if final else None,
        "history": history,
        "args": {k: v for k, v in vars(a).items()},
    }
    config = {
        "format": "r3m-checkpoint-1",
        "arch": "resnet18",
        "dim": 512,
        "step": step,
        "size": a.size,
        "preprocess": PREPROCESS,
        "source": {
            "positive_control": True,
            "dataset": str(data),
            "labels": LABEL_SOURCE,
            "val_r2": report["val_r2"],
            "val_mse": report["val_mse"],
            "steps": step,
            "seconds": report["seconds"],
            "fingerprint": fp,
        },
    }
    model.cpu()
    write_checkpoint(out, model, state_path, config, report, a.keep_state)
    log(f"wrote {out} (resnet18 trunk, {step} steps, {seconds:.0f}s training, {seconds / max(step, 1):.2f} s/step)")
    return 0


def _label_names() -> list[str]:
    """Names of the 17 labels (as metaworld_env.STATE_NAMES, without importing the simulator)."""
    pose = ["x", "y", "z", "q0", "q1", "q2", "q3"]
    curr = ["hand_x", "hand_y", "hand_z", "gripper"] + [f"obj1_{c}" for c in pose] + [f"obj2_{c}" for c in pose]
    names = curr + [f"prev_{n}" for n in curr] + ["goal_x", "goal_y", "goal_z"]
    return [names[i] for a, b in LABEL_SLICES for i in range(a, b)]


if __name__ == "__main__":
    try:
        code = main()
    except KeyboardInterrupt:
        log("interrupted (rerun with the same arguments to continue from the last saved state)")
        code = 130
    sys.exit(code)
