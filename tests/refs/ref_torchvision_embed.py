"""torchvision reference embeddings, for the parity test in tests/model_parity.rs.

Loads WEIGHTS.safetensors (our encoder's variables, torchvision names, no fc) into
torchvision.models.ARCH(weights=None) with fc replaced by Identity, checks that every torchvision
parameter and buffer was provided (only fc.* and num_batches_tracked may be absent), embeds the u8
images in IMAGES.safetensors ("images", [N, 3, H, W]) in eval mode after /255 and ImageNet
normalisation, and writes OUT.safetensors with "emb" [N, D].
usage: ref_torchvision_embed.py ARCH WEIGHTS IMAGES OUT
"""
import sys

import torch
import torchvision
from safetensors.torch import load_file, save_file


def main():
    arch, weights, images, out = sys.argv[1:5]
    model = getattr(torchvision.models, arch)(weights=None)
    model.fc = torch.nn.Identity()
    state = load_file(weights)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        sys.exit(f"weights do not match torchvision {arch}: missing {missing}, unexpected {unexpected}")
    model.eval()
    x = load_file(images)["images"].float() / 255.0
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        emb = model((x - mean) / std)
    save_file({"emb": emb.contiguous()}, out)


if __name__ == "__main__":
    main()
