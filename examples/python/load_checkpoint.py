"""Load an r3m checkpoint into PyTorch and embed video frames the way `r3m embed` does.

    python examples/python/load_checkpoint.py CHECKPOINT_DIR VIDEO [FRAME ...]

prints each frame's embedding (first values and norm). A ResNet checkpoint's `model.safetensors`
uses torchvision's parameter names; a `--arch shallow` one is DrQ's ConvNet (`DrQConvNet` below).
`config.json` says the architecture, the input size and an optional projection head, and its
`preprocess` (format r3m-pixels-1, the same object as an embeddings file's `r3m.preprocess`) how the
encoder wants its pixels. Frames are prepared as `r3m embed` prepares them: shorter side scaled to
`short_side` (size*8/7) by swscale (bilinear, through the ffmpeg CLI), a centre crop of size x size,
then (x / scale - mean) / std. (Rotation metadata is not handled here; `r3m embed` applies it.)
"""

import json
import subprocess
import sys

import numpy as np
import torch
import torchvision
from safetensors.torch import load_file

IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


class DrQConvNet(torch.nn.Module):
    """DrQ's shallow ConvNet as `r3m train --arch shallow` builds it: four 3x3 convolutions of 32
    channels (the first with stride 2) with ReLU, the feature map pooled to 49x49 when it has another
    size, Linear(32*49*49, 50), LayerNorm, tanh. Parameter names as in r3m's checkpoint."""

    def __init__(self):
        super().__init__()
        for i in range(4):
            setattr(self, f"conv{i}", torch.nn.Conv2d(3 if i == 0 else 32, 32, 3, stride=2 if i == 0 else 1))
        self.fc = torch.nn.Linear(32 * 49 * 49, 50)
        self.ln = torch.nn.LayerNorm(50)

    def forward(self, x):
        for i in range(4):
            x = torch.relu(getattr(self, f"conv{i}")(x))
        if tuple(x.shape[-2:]) != (49, 49):
            x = torch.nn.functional.adaptive_avg_pool2d(x, 49)
        return torch.tanh(self.ln(self.fc(x.flatten(1))))


def load_r3m(checkpoint_dir):
    """(encoder, pixel spec): the encoder in eval mode (+ the projection head, if any) and how it wants its pixels."""
    cfg = json.load(open(f"{checkpoint_dir}/config.json"))
    if cfg["arch"] == "shallow":
        net = DrQConvNet()
    else:
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
    return net.eval(), pixel_spec(cfg)


def pixel_spec(cfg):
    """The encoder's pixel spec: config.json's `preprocess`, or what an older checkpoint's encoder applies."""
    spec = cfg.get("preprocess") or {}
    if spec.get("format") == "r3m-pixels-1":
        return spec
    size = int(cfg["size"])
    norm = {"mean": [0.5] * 3, "std": [1.0] * 3} if cfg["arch"] == "shallow" else IMAGENET
    return {"size": size, "short_side": max(size * 8 // 7, size), "scale": 255.0, **norm}


def eval_frames(video, indices, spec):
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
    size, short = int(spec["size"]), int(spec["short_side"])
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
def embed(net, frames, spec):
    """float32 [N, D] embeddings of uint8 [N, H, W, 3] frames, normalised as `spec` says."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / float(spec["scale"])
    mean = torch.tensor(spec["mean"], dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(spec["std"], dtype=torch.float32).view(1, 3, 1, 1)
    return net((x - mean) / std)


if __name__ == "__main__":
    ck, video, *idx = sys.argv[1:]
    net, spec = load_r3m(ck)
    indices = [int(i) for i in idx] or [0]
    for i, e in zip(indices, embed(net, eval_frames(video, indices, spec), spec)):
        print(f"frame {i}: {e[:4].tolist()} ... |e| = {e.norm():.4f}")
