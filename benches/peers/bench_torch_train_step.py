"""PyTorch peer for benches/train_step.rs: the R3M training step as the reference recipe runs it
(torchvision ResNet, fp32, NCHW, BatchNorm in train mode, the R3M TCN loss with 3 negatives and
L1/L2 penalties, Adam 1e-4), on random u8 batches already in memory (no data loading).
usage: bench_torch_train_step.py ARCH BATCH SIZE STEPS WARMUP THREADS [MODE]
MODE: fp32 (the recipe: fp32 NCHW, default), fp32-cl (channels_last), bf16-cl (CPU/CUDA bf16
autocast + channels_last, the PyTorch performance-guide recipe).
Prints JSON: steps, seconds (after warm-up).
"""
import json
import sys
import time

import torch
import torchvision


def main():
    arch, batch, size, steps, warmup, threads = sys.argv[1], *map(int, sys.argv[2:7])
    mode = sys.argv[7] if len(sys.argv) > 7 else "fp32"
    assert mode in ("fp32", "fp32-cl", "bf16-cl"), mode
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = getattr(torchvision.models, arch)(weights=None)
    net.fc = torch.nn.Identity()
    net.train()
    fmt = torch.channels_last if mode.endswith("-cl") else torch.contiguous_format
    net = net.to(memory_format=fmt)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    data = torch.randint(0, 256, (batch * 5, 3, size, size), dtype=torch.uint8).contiguous(memory_format=fmt)

    def sim(a, b):
        return -torch.linalg.norm(a - b, dim=-1)

    def step():
        x = (data.float() / 255.0 - mean) / std
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16-cl"):
            e = net(x)
        e = e.float().view(batch, 5, -1)
        es0, es1, es2 = e[:, 2], e[:, 3], e[:, 4]
        s02, s12, s01 = sim(es2, es0), sim(es2, es1), sim(es1, es0)
        n0 = torch.stack([sim(es0, es0[torch.randperm(batch)]) for _ in range(3)], -1)
        n2 = torch.stack([sim(es2, es2[torch.randperm(batch)]) for _ in range(3)], -1)
        eps = 1e-8
        l1 = -torch.log(eps + torch.exp(s12) / (eps + torch.exp(s02) + torch.exp(s12) + torch.exp(n2).sum(-1)))
        l2 = -torch.log(eps + torch.exp(s01) / (eps + torch.exp(s01) + torch.exp(s02) + torch.exp(n0).sum(-1)))
        flat = e.reshape(batch * 5, -1)
        loss = ((l1 + l2) / 2).mean() + 1e-5 * torch.linalg.norm(flat, ord=1, dim=-1).mean() \
            + 1e-5 * torch.linalg.norm(flat, ord=2, dim=-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    print(json.dumps({"steps": steps, "seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
