"""Reference R3M objective in PyTorch, for the parity test in tests/model_parity.rs.

Reads IN.safetensors: emb [B, 5, D] float32 (stack order start, end, s0, s1, s2), perms0 and perms2
[K, B] int64 (the negatives' permutations), weights [3] (w_tcn, w_l1, w_l2) and cosine [1] (0/1).
Writes OUT.safetensors: total, tcn, l1, l2, aligned (scalars) and grad (d total / d emb).
The formulas follow the R3M trainer: sim = -||a-b||_2, InfoNCE with eps = 1e-8 inside the log and
the denominator, two anchors (s2 and s0) averaged, plus L1/L2 norms of all embeddings.
usage: ref_r3m_loss.py IN OUT
"""
import sys

import torch
from safetensors.torch import load_file, save_file


def main():
    t = load_file(sys.argv[1])
    emb = t["emb"].double().requires_grad_(True)
    p0, p2 = t["perms0"], t["perms2"]
    w_tcn, w_l1, w_l2 = t["weights"].tolist()
    cosine = bool(t["cosine"].item())
    eps = 1e-8

    def sim(a, b):
        if cosine:
            return torch.nn.functional.cosine_similarity(a, b, dim=-1, eps=1e-8)
        return -torch.linalg.norm(a - b, dim=-1)

    es0, es1, es2 = emb[:, 2], emb[:, 3], emb[:, 4]
    sim_0_2, sim_1_2, sim_0_1 = sim(es2, es0), sim(es2, es1), sim(es1, es0)
    neg0 = torch.stack([sim(es0, es0[p]) for p in p0], -1)
    neg2 = torch.stack([sim(es2, es2[p]) for p in p2], -1)
    a = -torch.log(eps + torch.exp(sim_1_2) / (eps + torch.exp(sim_0_2) + torch.exp(sim_1_2) + torch.exp(neg2).sum(-1)))
    b = -torch.log(eps + torch.exp(sim_0_1) / (eps + torch.exp(sim_0_1) + torch.exp(sim_0_2) + torch.exp(neg0).sum(-1)))
    tcn = ((a + b) / 2.0).mean()
    flat = emb.reshape(emb.shape[0] * 5, -1)
    l1 = torch.linalg.norm(flat, ord=1, dim=-1).mean()
    l2 = torch.linalg.norm(flat, ord=2, dim=-1).mean()
    total = w_tcn * tcn + w_l1 * l1 + w_l2 * l2
    aligned = ((sim_0_2 < sim_1_2).double() * (sim_0_1 > sim_0_2).double()).mean()
    total.backward()
    out = {k: v.detach().float().reshape(1) for k, v in
           dict(total=total, tcn=tcn, l1=l1, l2=l2, aligned=aligned).items()}
    out["grad"] = emb.grad.float().contiguous()
    save_file(out, sys.argv[2])


if __name__ == "__main__":
    main()
