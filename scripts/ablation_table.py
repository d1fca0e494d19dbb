#!/usr/bin/env python3
"""The ablation's tables from the files scripts/ablation.sh leaves.

usage: ablation_table.py OUT [PRETRAIN_OUT]

Reads OUT/bc/NAME/TASK/results.json (r3m eval bc) and PRETRAIN_OUT/OBJ-bB/{done,heldout-alignment}.json
and prints markdown: objective x task (final success, mean over policy seeds, with the Wilson 95%
interval over all final rollouts, and R3M's max-over-evaluations), pretraining time and
alignment accuracy, and (from OBJ-bB/step_time.json when present) seconds per pretraining step
measured alone; and, when more than one batch size was trained, the batch-size study.
"""
import json
import math
import sys
from pathlib import Path


def wilson(k, n, z=1.96):
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def cells(path):
    r = json.loads(path.read_text())
    by = {}
    for c in r["cells"]:
        by.setdefault(c["encoder"], []).append(c)
    return r, by


def summarize(cs):
    finals = [c["evals"][-1]["successes"] / max(1, c["evals"][-1]["rollouts"]) for c in cs]
    maxes = [max(e["successes"] / max(1, e["rollouts"]) for e in c["evals"]) for c in cs]
    k = sum(c["evals"][-1]["successes"] for c in cs)
    n = sum(c["evals"][-1]["rollouts"] for c in cs)
    lo, hi = wilson(k, n)
    mses = [c["heldout_mse"] for c in cs if c.get("heldout_mse") is not None]
    return {"final": sum(finals) / len(finals), "max": sum(maxes) / len(maxes), "lo": lo, "hi": hi,
            "n": n, "seeds": len(cs), "per_seed": finals, "mse": sum(mses) / len(mses) if mses else None,
            "seconds": sum(c["seconds"] for c in cs)}


def pct(x):
    return f"{100 * x:.0f}%"


def main():
    out = Path(sys.argv[1])
    pre = Path(sys.argv[2]) if len(sys.argv) > 2 else out / "pretrain"
    rows = {}  # name -> task -> summary
    tasks = []
    settings = None
    for f in sorted((out / "bc").glob("*/*/results.json")):
        name, task = f.parent.parent.name, f.parent.name
        r, by = cells(f)
        settings = settings or r
        if task not in tasks:
            tasks.append(task)
        for enc, cs in by.items():
            key = name if enc == "pretrained" else enc
            rows.setdefault(key, {})[task] = summarize(cs)
    if not rows:
        sys.exit(f"{out}: no results yet")
    info = {}
    for d in sorted(pre.glob("*-b*")):
        if (d / "done.json").exists():
            j = json.loads((d / "done.json").read_text())
            a = d / "heldout-alignment.json"
            if a.exists():
                j.update({"heldout_" + k: v for k, v in json.loads(a.read_text()).items() if k in ("aligned", "spearman_progress")})
            st = d / "step_time.json"
            if st.exists():
                j["step_s"] = json.loads(st.read_text())["step_s"]
            info[d.name] = j
    ra = pre / "random" / "heldout-alignment.json"
    if ra.exists():
        info["random"] = {"heldout_" + k: v for k, v in json.loads(ra.read_text()).items() if k in ("aligned", "spearman_progress")}
    s = settings
    demos = ",".join(map(str, s["demos"])) if isinstance(s["demos"], list) else s["demos"]
    print(f"Behaviour cloning: {demos} demos, {s['seeds']} policy seed(s) x {s['rollouts']} rollouts per evaluation, "
          f"{s['steps']} policy steps (evaluated every {s['eval_every']}), {s['max_episode_steps']}-step limit, encoder input {s['size']} px.\n")
    head = "| encoder | pretrain time | s/step alone | held-out aligned | " + " | ".join(tasks) + " | mean |"
    print(head)
    print("| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in tasks) + " | ---: |")
    def order(k):
        return (k in ("random", "scratch"), k)
    for name in sorted(rows, key=order):
        r = rows[name]
        i = info.get(name, {})
        t = f"{i['seconds'] / 60:.1f} min" if "seconds" in i else "–"
        al = f"{i['heldout_aligned']:.3f}" if "heldout_aligned" in i else "–"
        st = f"{i['step_s']:.2f}" if "step_s" in i else "–"
        vals = []
        for task in tasks:
            c = r.get(task)
            vals.append("–" if c is None else f"{pct(c['final'])} ({pct(c['lo'])}–{pct(c['hi'])}), max {pct(c['max'])}")
        have = [r[t]["final"] for t in tasks if t in r]
        mean = pct(sum(have) / len(have)) if have else "–"
        print(f"| {name} | {t} | {st} | {al} | " + " | ".join(vals) + f" | {mean} |")
    info = {k: v for k, v in info.items() if k == "random" or "batch" in v} | {}
    batches = sorted({v["batch"] for v in info.values() if "batch" in v})
    if len(batches) > 1:
        print("\nBatch-size study (same steps; held-out aligned: R3M's alignment measure on the held-out tasks' videos; "
              "train aligned: mean over the last 50 training steps; BC: mean final success over the tasks above):\n")
        trained = [v for v in info.values() if "batch" in v]
        objs = sorted({v["objective"] for v in trained if sum(1 for w in trained if w["objective"] == v["objective"]) > 1})
        print("| objective | batch | pretrain time | s/step alone | train aligned | held-out aligned | BC mean final |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for o in objs:
            for b in batches:
                k = f"{o}-b{b}"
                if k not in info:
                    continue
                i = info[k]
                r = rows.get(k, {})
                have = [r[t]["final"] for t in tasks if t in r]
                bcm = pct(sum(have) / len(have)) if have else "–"
                ha = f"{i['heldout_aligned']:.3f}" if "heldout_aligned" in i else "–"
                st = f"{i['step_s']:.2f}" if "step_s" in i else "–"
                print(f"| {o} | {b} | {i['seconds'] / 60:.1f} min | {st} | {i['train_aligned_last50']:.3f} | {ha} | {bcm} |")


if __name__ == "__main__":
    main()
