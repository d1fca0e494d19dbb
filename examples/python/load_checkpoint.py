"""Load an r3m checkpoint into torchvision's ResNet and embed video frames the way `r3m embed` does.

    python examples/python/load_checkpoint.py CHECKPOINT_DIR VIDEO [FRAME ...]

prints each frame's embedding (first values and norm). The checkpoint's `model.safetensors` uses
torchvision's parameter names; `config.json` says the architecture, the input size and an optional
projection head. Frames are prepared as `r3m embed` prepares them: shorter side scaled to size*8/7
by swscale (bilinear, through the ffmpeg CLI), a centre crop of size x size, ImageNet
normalisation. (Rotation metadata is not handled here; `r3m embed` applies it.)
"""

import json
import subprocess
import sys

import numpy as np
import torch
import torchvision
from safetensors.torch import load_file

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def load_r3m(checkpoint_dir):
    """(encoder, input size): torchvision's ResNet trunk (+ the projection head, if any), eval mode."""
    cfg = json.load(open(f"{checkpoint_dir}/config.json"))
    net = getattr(torchvision.models, cfg["arch"])()  # resnet18 / resnet34 / resnet50
    net.fc = torch.nn.Identity()  # r3m embeds the pooled trunk features
    weights = load_file(f"{checkpoint_dir}/model.safetensors")
    if cfg.get("proj_dim"):
        proj = torch.nn.Linear(weights["proj.weight"].shape[1], cfg["proj_dim"])
        proj.load_state_dict({"weight": weights.pop("proj.weight"), "bias": weights.pop("proj.bias")})
        net = torch.nn.Sequential(net, proj)
        net[0].load_state_dict(weights)
    else:
        net.load_state_dict(weights)
    return net.eval(), int(cfg["size"])


def eval_frames(video, indices, size):
    """uint8 [N, size, size, 3]: frames `indices` (0-based, presentation order), r3m's eval transform.

    Scaled by the ffmpeg CLI (`scale=W:H:flags=bilinear` to rgb24), whose output `r3m embed`'s
    decoder matches byte for byte when both use the same FFmpeg (the system's, here). PyAV's
    `frame.reformat` works too, but its wheels bundle another FFmpeg whose swscale rounds
    differently (embeddings then agree to a cosine of ~0.999, not exactly).
    """
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "json", video],
        check=True, capture_output=True, text=True,
    )
    st = json.loads(probe.stdout)["streams"][0]
    w, h = st["width"], st["height"]
    short = max(size * 8 // 7, size)
    rw, rh = (short, short * h // w) if w <= h else (short * w // h, short)
    rw, rh = max(rw, size), max(rh, size)
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", video, "-vf", f"scale={rw}:{rh}:flags=bilinear", "-fps_mode", "passthrough",
         "-pix_fmt", "rgb24", "-f", "rawvideo", "-"],
        check=True, capture_output=True,
    ).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, rh, rw, 3)
    left, top = round((rw - size) / 2), round((rh - size) / 2)  # half to even, as torchvision
    return np.ascontiguousarray(frames[indices, top : top + size, left : left + size])


@torch.no_grad()
def embed(net, frames):
    """float32 [N, D] embeddings of uint8 [N, H, W, 3] frames."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0
    return net((x - MEAN) / STD)


if __name__ == "__main__":
    ck, video, *idx = sys.argv[1:]
    net, size = load_r3m(ck)
    indices = [int(i) for i in idx] or [0]
    for i, e in zip(indices, embed(net, eval_frames(video, indices, size))):
        print(f"frame {i}: {e[:4].tolist()} ... |e| = {e.norm():.4f}")
