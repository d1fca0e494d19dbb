"""Convert an official R3M checkpoint (model.pt) into an r3m checkpoint directory.

R3M saves {'r3m': state_dict} with keys 'module.convnet.<torchvision name>' for the ResNet trunk
and 'module.lang_enc.*' / 'module.lang_rew.*' for the language heads. We keep the trunk, strip the
prefix (torchvision names, as r3m-model uses), drop the language heads and the trunk's fc (R3M
replaces it with Identity; nothing to drop in practice), and write DIR/model.safetensors and
DIR/config.json (atomically: a temp dir renamed into place). The architecture is inferred from
the keys (bottleneck conv3 -> resnet50; a 6th block in layer3 -> resnet34; else resnet18).

usage: convert_r3m.py MODEL_PT OUT_DIR
"""
import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file

PREFIX = "module.convnet."


def infer_arch(keys):
    if "layer1.0.conv3.weight" in keys:
        return "resnet50", 2048
    if "layer3.5.conv1.weight" in keys:
        return "resnet34", 512
    return "resnet18", 512


def main():
    src, out = sys.argv[1], sys.argv[2]
    try:
        ckpt = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - report any unpickling failure with the file name
        sys.exit(f"{src}: cannot read as a PyTorch checkpoint: {e}")
    state = ckpt.get("r3m", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        sys.exit(f"{src}: expected a dict with an 'r3m' state dict")
    trunk = {k[len(PREFIX):]: v for k, v in state.items() if k.startswith(PREFIX)}
    trunk = {k: v.float().contiguous() for k, v in trunk.items()
             if not k.startswith("fc.") and not k.endswith("num_batches_tracked")}
    if "conv1.weight" not in trunk:
        sys.exit(f"{src}: no '{PREFIX}conv1.weight': not an R3M checkpoint")
    dropped = sorted({k.split(".")[1] for k in state if not k.startswith(PREFIX)})
    arch, dim = infer_arch(trunk)
    tmp = out.rstrip("/") + f".tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    save_file(trunk, os.path.join(tmp, "model.safetensors"))
    config = {
        "format": "r3m-checkpoint-1", "arch": arch, "dim": dim, "step": 0,
        "preprocess": {"input": "u8 RGB", "scale": 255.0, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        "source": {"converted_from": os.path.abspath(src), "dropped": dropped},
    }
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.rename(tmp, out)
    print(f"{out}: {arch}, {len(trunk)} tensors (dropped: {', '.join(dropped) or 'nothing'})")


if __name__ == "__main__":
    main()
