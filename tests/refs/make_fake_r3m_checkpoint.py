"""Test helper: writes a checkpoint with the exact shape of an official R3M model.pt, built from a
torchvision ResNet with random weights ({'r3m': state_dict}, trunk under 'module.convnet.', fc
replaced by Identity, plus language-head tensors that conversion must drop), and the embeddings
torchvision gives for the images in IMAGES.safetensors.
usage: make_fake_r3m_checkpoint.py ARCH OUT_PT IMAGES EMB_OUT
"""
import sys

import torch
import torchvision
from safetensors.torch import load_file, save_file


def main():
    arch, out_pt, images, emb_out = sys.argv[1:5]
    torch.manual_seed(0)
    net = getattr(torchvision.models, arch)(weights=None)
    net.fc = torch.nn.Identity()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    state = {"module.convnet." + k: v for k, v in net.state_dict().items()}
    state["module.lang_enc.model.weight"] = torch.randn(8, 4)
    state["module.lang_rew.0.weight"] = torch.randn(1024, 2560)
    torch.save({"r3m": state}, out_pt)
    net.eval()
    x = load_file(images)["images"].float() / 255.0
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        save_file({"emb": net((x - mean) / std).contiguous()}, emb_out)


if __name__ == "__main__":
    main()
