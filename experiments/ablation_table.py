#!/usr/bin/env python3
"""The ablation's tables from the files experiments/ablation.sh leaves.

usage: ablation_table.py OUT [PRETRAIN_OUT] [--batch B]

Reads OUT/bc/NAME/TASK/results.json (r3m eval bc) and PRETRAIN_OUT/OBJ-bB/{done,heldout-alignment}.json
and prints markdown: objective x task (final success, mean over policy seeds, with the Wilson 95%
interval over all final rollouts, and R3M's max-over-evaluations), pretraining time and
alignment accuracy, and seconds per pretraining step (OBJ-bB/step_time.json, a separate run alone,
when present; else done.json's mean over the run's steps 11 on, which is a time alone only when
nothing else shared the CPU); and, when more than one batch size was trained, the batch-size study
(objective x batch: held-out alignment and BC mean success). With --batch B the main table keeps
only the pretrained encoders of batch B (and the baselines).
"""
import argparse
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
    if "protocol" in r:  # r3m-eval-bc-2 and -3: settings under "protocol", demos and seeds from the cells
        r = {**r, **r["protocol"], "demos": sorted({c["demos"] for c in r["cells"]}),
             "seeds": len({c["seed"] for c in r["cells"]})}
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
            "k": k, "n": n, "seeds": len(cs), "per_seed": finals, "mse": sum(mses) / len(mses) if mses else None,
            "seconds": sum(c.get("timing", c).get("seconds", 0.0) for c in cs)}


def pct(x):
    return f"{100 * x:.0f}%"


def pct_or_dash(x):
    return "–" if x is None else pct(x)


def aligned_or_dash(i):
    return f"{i['heldout_aligned']:.3f}" if "heldout_aligned" in i else "–"


def load_info(pre):
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
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("pretrain_out", type=Path, nargs="?")
    ap.add_argument("--batch", type=int, help="the main table's batch size (other batch sizes go to the batch-size study only)")
    a = ap.parse_args()
    out = a.out
    pre = a.pretrain_out or out / "pretrain"
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
    info = load_info(pre)
    s = settings
    demos = ",".join(map(str, s["demos"])) if isinstance(s["demos"], list) else s["demos"]
    print(f"Behaviour cloning: {demos} demos, {s['seeds']} policy seed(s) x {s['rollouts']} rollouts per evaluation, "
          f"{s['steps']} policy steps (evaluated every {s['eval_every']}), {s['max_episode_steps']}-step limit, encoder input {s['size']} px.\n")
    head = "| encoder | pretrain time | s/step | held-out aligned | " + " | ".join(tasks) + " | mean |"
    print(head)
    print("| --- | ---: | ---: | ---: | " + " | ".join("---:" for _ in tasks) + " | ---: |")

    def order(k):
        return (k in ("random", "scratch"), k)

    def mean_final(r):
        have = [r[t]["final"] for t in tasks if t in r]
        return sum(have) / len(have) if have else None

    def in_main(name):
        if a.batch is None or name in ("random", "scratch"):
            return True
        b = info.get(name, {}).get("batch")
        return b == a.batch if b is not None else name.endswith(f"-b{a.batch}")

    for name in sorted(filter(in_main, rows), key=order):
        r = rows[name]
        i = info.get(name, {})
        t = f"{i['seconds'] / 60:.1f} min" if "seconds" in i else "–"
        st = f"{i['step_s']:.2f}" if "step_s" in i else "–"
        vals = []
        for task in tasks:
            c = r.get(task)
            vals.append("–" if c is None else f"{pct(c['final'])} ({pct(c['lo'])}–{pct(c['hi'])}), max {pct(c['max'])}")
        print(f"| {name} | {t} | {st} | {aligned_or_dash(i)} | " + " | ".join(vals) + f" | {pct_or_dash(mean_final(r))} |")
    trained = [v for v in info.values() if "batch" in v]
    batches = sorted({v["batch"] for v in trained})
    objs = sorted({v["objective"] for v in trained if sum(1 for w in trained if w["objective"] == v["objective"]) > 1})
    if len(batches) > 1 and objs:
        print("\nBatch-size study (same steps; held-out aligned: R3M's alignment measure on the held-out tasks' videos; "
              "train aligned: mean over the last 50 training steps; BC: mean final success over the tasks above):\n")
        print("| objective | " + " | ".join(f"batch {b}" for b in batches) + " |")
        print("| --- | " + " | ".join("---:" for _ in batches) + " |")
        for o in objs:
            cellv = []
            for b in batches:
                i = info.get(f"{o}-b{b}")
                if i is None:
                    cellv.append("–")
                    continue
                cellv.append(f"{aligned_or_dash(i)} / {pct_or_dash(mean_final(rows.get(f'{o}-b{b}', {})))}")
            print(f"| {o} | " + " | ".join(cellv) + " |")
        # every objective's final rollouts at one batch size pooled: the study's BC signal with the
        # most rollouts behind it (aligned: the mean over objectives)
        pooled = []
        for b in batches:
            ks = [f"{o}-b{b}" for o in objs if f"{o}-b{b}" in info]
            al = [info[k]["heldout_aligned"] for k in ks if "heldout_aligned" in info[k]]
            k_ok = sum(rows[k][t]["k"] for k in ks if k in rows for t in tasks if t in rows[k])
            n = sum(rows[k][t]["n"] for k in ks if k in rows for t in tasks if t in rows[k])
            lo, hi = wilson(k_ok, n)
            mal = f"{sum(al) / len(al):.3f}" if al else "–"
            pooled.append(f"{mal} / {pct(k_ok / n)} ({pct(lo)}–{pct(hi)}, n={n})" if n else f"{mal} / –")
        print("| all, pooled | " + " | ".join(pooled) + " |")
        pairs = [(i["heldout_aligned"], mean_final(rows[k])) for k, i in info.items()
                 if "heldout_aligned" in i and k in rows and mean_final(rows[k]) is not None]
        if len(pairs) >= 3:
            from scipy.stats import spearmanr  # scipy comes with metaworld
            print(f"\nSpearman correlation of held-out aligned and BC mean final over the {len(pairs)} encoders with both: "
                  f"{spearmanr([p[0] for p in pairs], [p[1] for p in pairs]).statistic:.2f}")
        if "random" in info and "heldout_aligned" in info["random"]:
            print(f"\n(cells: held-out aligned / BC mean final; the random encoder's held-out aligned is {info['random']['heldout_aligned']:.3f})")
        print("\n| objective | batch | pretrain time | s/step | train aligned | held-out aligned | BC mean final |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for o in objs:
            for b in batches:
                k = f"{o}-b{b}"
                if k not in info:
                    continue
                i = info[k]
                st = f"{i['step_s']:.2f}" if "step_s" in i else "–"
                print(f"| {o} | {b} | {i['seconds'] / 60:.1f} min | {st} | {i['train_aligned_last50']:.3f} | "
                      f"{aligned_or_dash(i)} | {pct_or_dash(mean_final(rows.get(k, {})))} |")


if __name__ == "__main__":
    main()
