#!/usr/bin/env python3
"""PyTorch references for the objective variants (tests/model_parity.rs), written from their
definitions with per-row loops, independently of the Rust code.

usage: ref_objectives.py IN.safetensors OUT.safetensors

IN holds `which` (0 triplet, 1 npair, 2 simclr, 3 moco, 4 byol, 5 proto, 6 lang), `emb` [B,5,D],
`clips` [B] int64, `params` [margin, hard, tau], and per variant: moco `key` [B,D], `queue` [K,D];
byol `pred` [N,P], `target` [N,P]; lang `lang` [B,L], `mask` [B], `perms` [9,B], `w0..w4`, `b0..b4`.
OUT: `loss`, `acc` (scalars) and `grad` (d loss / d emb, or / d pred for byol).
"""
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

EPS = 1e-8


def main(inp, out):
    t = load_file(inp)
    which = int(t["which"].item())
    margin, hard, tau = t["params"].tolist()
    clips = t["clips"].tolist()
    emb = t["emb"].clone().double().requires_grad_(True)
    B = emb.shape[0]
    a, p, n = emb[:, 4], emb[:, 3], emb[:, 2]
    grad_of = emb
    if which == 0:
        negs = []
        for b in range(B):
            cands = [emb[b, 2]] + [emb[c, k] for c in range(B) if clips[c] != clips[b] for k in range(5)]
            if hard > 0.5:
                d = torch.stack([((a[b] - x) ** 2).sum() for x in cands])
                negs.append(cands[int(d.argmin())])
            else:
                negs.append(n[b])
        neg = torch.stack(negs)
        dp = ((a - p) ** 2).sum(-1)
        dn = ((a - neg) ** 2).sum(-1)
        loss = F.relu(dp - dn + margin).mean()
        acc = (dp < dn).double().mean()
    elif which == 1:
        losses, hits = [], []
        for b in range(B):
            logits = [torch.dot(a[b], p[b])] + [torch.dot(a[b], emb[c, k]) for c in range(B) if clips[c] != clips[b] for k in range(5)]
            logits = torch.stack(logits)
            losses.append(-F.log_softmax(logits, 0)[0])
            hits.append(float(int(logits.argmax()) == 0))
        loss = torch.stack(losses).mean()
        acc = torch.tensor(sum(hits) / B)
    elif which == 2:
        z = F.normalize(torch.cat([a, p]), dim=-1)
        c2 = clips + clips
        losses, hits = [], []
        for i in range(2 * B):
            j = (i + B) % (2 * B)
            cand = [m for m in range(2 * B) if m != i and (m == j or c2[m] != c2[i])]
            logits = torch.stack([torch.dot(z[i], z[m]) / tau for m in cand])
            pos = cand.index(j)
            losses.append(-F.log_softmax(logits, 0)[pos])
            hits.append(float(int(logits.argmax()) == pos))
        loss = torch.stack(losses).mean()
        acc = torch.tensor(sum(hits) / (2 * B))
    elif which == 3:
        q = F.normalize(a, dim=-1)
        k = F.normalize(t["key"].double(), dim=-1)
        queue = F.normalize(t["queue"].double(), dim=-1)
        logits = torch.cat([(q * k).sum(-1, keepdim=True), q @ queue.T], 1) / tau
        loss = F.cross_entropy(logits, torch.zeros(B, dtype=torch.long))
        acc = (logits.argmax(1) == 0).double().mean()
    elif which == 4:
        pred = t["pred"].clone().double().requires_grad_(True)
        target = t["target"].double()
        grad_of = pred
        cos = (F.normalize(pred, dim=-1) * F.normalize(target, dim=-1)).sum(-1)
        loss = (2 - 2 * cos).mean()
        acc = (cos > 0).double().mean()
    elif which == 5:
        classes = sorted(set(clips))
        protos = []
        for c in classes:
            rows = [b for b in range(B) if clips[b] == c]
            protos.append(torch.stack([emb[b, s] for b in rows for s in (0, 1, 2)]).mean(0))
        protos = torch.stack(protos)
        losses, hits = [], []
        for b in range(B):
            for s in (3, 4):
                logits = -((emb[b, s] - protos) ** 2).sum(-1)
                y = classes.index(clips[b])
                losses.append(-F.log_softmax(logits, 0)[y])
                hits.append(float(int(logits.argmax()) == y))
        loss = torch.stack(losses).mean()
        acc = torch.tensor(sum(hits) / len(hits))
    elif which == 6:
        lang = t["lang"].double()
        mask = t["mask"].double()
        perms = t["perms"].long()
        W = [t[f"w{i}"].double() for i in range(5)]
        bias = [t[f"b{i}"].double() for i in range(5)]

        def G(x0, xt):
            h = torch.cat([x0, xt, lang], -1)
            for i in range(5):
                h = h @ W[i].T + bias[i]
                if i < 4:
                    h = torch.relu(h)
            return h.squeeze(-1)

        e0, eg, es0, es1, es2 = (emb[:, i] for i in range(5))
        total, accs = 0, 0
        for ti, (pos_e, neg_e, shuf_e) in enumerate([(eg, e0, eg), (es1, es0, es1), (es2, es1, es2)]):
            pos = G(e0, pos_e)
            negs = [G(e0, neg_e)] + [G(e0[perms[3 * ti + j]], shuf_e[perms[3 * ti + j]]) for j in range(3)]
            negs = torch.stack(negs, -1)
            total = total + -torch.log(EPS + torch.exp(pos) / (EPS + torch.exp(pos) + torch.exp(negs).sum(-1)))
            accs = accs + (negs.max(-1)[0] < pos).double()
        loss = (total / 3 * mask).mean()
        acc = (accs / 3 * mask).sum() / mask.sum().clamp(min=1)
    else:
        sys.exit(f"unknown variant {which}")
    loss.backward()
    save_file({"loss": loss.detach().float().reshape(1), "acc": torch.as_tensor(acc).detach().float().reshape(1),
               "grad": grad_of.grad.float().contiguous()}, out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
