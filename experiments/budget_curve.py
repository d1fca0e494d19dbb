#!/usr/bin/env python3
"""Success against pretraining budget: one curve per setting and task from `r3m eval bc` runs.

usage: budget_curve.py OUT [OUT ...] --prefix NAME[,NAME ...] [--tasks a,b] [--refs random,state]
                       [--plot FILE.svg]

Reads OUT/TASK/results.json (format r3m-eval-bc-3, or -2 from older r3m) in every OUT given; where two directories hold
the same row (task and encoder name), the first one listed wins. Every checkpoint row whose name
starts with a NAME (e.g. `tcn-in-400`, `tcn-in-1200` for NAME `tcn-in-`) is one point of NAME's
curve: its budget (steps, batch, tuples = steps x batch x ranks) is read from the checkpoint's own
config.json, found through results.json's `checkpoints`, so nothing is typed in by hand. Several
NAMEs (e.g. `tcn-in-,tcn-held-`: in-domain and held-out pretraining) give one curve each. The rows
named by --refs (default: random, state) are drawn as flat references. Prints a Markdown table
(rows: budgets; columns: tasks; each cell final success, 95% interval, paired difference
from random, seeds) and with --plot writes an SVG.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from eval_table import COLOURS, pct, signed


def budget_of(ckpt: Path) -> dict:
    c = json.loads((ckpt / "config.json").read_text())
    world = max(1, len(c.get("rank_states") or []))
    return {"steps": c["step"], "batch": c["batch"], "tuples": c["step"] * c["batch"] * world, "size": c.get("size")}


def load(outs: list[Path], prefixes: list[str], refs: list[str], only: list[str] | None):
    """points[task][prefix] = [(budget, row)] by tuples; ref_rows[task][name] = row; tasks in order."""
    points, ref_rows, tasks, seen = {}, {}, [], set()
    for out in outs:
        for f in sorted(out.glob("*/results.json")):
            r = json.loads(f.read_text())
            if r.get("format") not in ("r3m-eval-bc-2", "r3m-eval-bc-3"):
                continue
            task = r["protocol"]["task"]
            if only and task not in only:
                continue
            if task not in tasks:
                tasks.append(task)
            for row in r["rows"]:
                name = row["encoder"]
                if (task, name) in seen:
                    continue
                prefix = next((x for x in prefixes if name.startswith(x)), None)
                if prefix is not None and name in r.get("checkpoints", {}):
                    b = budget_of(Path(r["checkpoints"][name]))
                    points.setdefault(task, {}).setdefault(prefix, []).append((b, row))
                elif name in refs:
                    ref_rows.setdefault(task, {})[name] = row
                else:
                    continue
                seen.add((task, name))
    for by_prefix in points.values():
        for pts in by_prefix.values():
            pts.sort(key=lambda p: p[0]["tuples"])
    if only:
        tasks = [t for t in only if t in tasks]
    return tasks, points, ref_rows


def cell(row) -> str:
    f = row["final_success"]
    s = f"{pct(f['mean'])} ({pct(f['lo'])}–{pct(f['hi'])})"
    d = row.get("vs_random")
    if d is not None:
        s += f", Δ {signed(d['mean'])} ({signed(d['lo'])}…{signed(d['hi'])})"
    return s + f", {len(row['seeds'])} seeds"


def table(tasks, prefixes, points, ref_rows, refs) -> str:
    lines = ["| pretraining | " + " | ".join(tasks) + " |", "| --- |" + " ---: |" * len(tasks)]
    for prefix in prefixes:
        budgets = sorted({(b["steps"], b["tuples"]) for t in tasks for b, _ in points.get(t, {}).get(prefix, [])})
        for steps, tuples in budgets:
            cells = []
            for t in tasks:
                pts = points.get(t, {}).get(prefix, [])
                hit = [row for b, row in pts if b["steps"] == steps and b["tuples"] == tuples]
                cells.append(cell(hit[0]) if hit else "–")
            label = f"{steps} steps, {tuples} tuples"
            if len(prefixes) > 1:
                label = f"{prefix}* {label}"
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for ref in refs:
        cells = [cell(ref_rows[t][ref]) if ref in ref_rows.get(t, {}) else "–" for t in tasks]
        lines.append(f"| {ref} (reference) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(tasks, prefixes, points, ref_rows, refs, path: Path) -> None:
    """One panel per task: success with intervals against tuples seen, references as dashed lines."""
    pw, ph, left, top = 240, 180, 45, 30
    width = left + (pw + 30) * len(tasks)
    height = top + ph + 70
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           'font-size="11">', '<rect width="100%" height="100%" fill="white"/>',
           f'<text x="{left}" y="14">final success vs pretraining tuples (95% intervals); dashed: references</text>']
    for k, prefix in enumerate(prefixes):
        out.append(f'<text x="{left + 120 * k}" y="{height - 24}" fill="{COLOURS[k % len(COLOURS)]}">● {prefix}*</text>')
    xmax = max([b["tuples"] for t in tasks for pts in points.get(t, {}).values() for b, _ in pts] + [1])
    for j, t in enumerate(tasks):
        x0 = left + (pw + 30) * j

        def X(v, x0=x0):
            return x0 + 10 + (pw - 20) * v / xmax

        def Y(v):
            return top + ph - ph * v

        out.append(f'<rect x="{x0}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
        out.append(f'<text x="{x0 + pw / 2}" y="{top + ph + 30}" text-anchor="middle">{t} (tuples; max {xmax})</text>')
        for v in (0, 0.5, 1):
            out.append(f'<text x="{x0 - 4}" y="{Y(v) + 4}" text-anchor="end">{pct(v)}</text>')
        for i, ref in enumerate(refs):
            row = ref_rows.get(t, {}).get(ref)
            if row is None:
                continue
            y = Y(row["final_success"]["mean"])
            c = COLOURS[(i + len(prefixes)) % len(COLOURS)]
            out.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{y}" y2="{y}" stroke="{c}" stroke-dasharray="4 3"/>')
            out.append(f'<text x="{x0 + pw - 2}" y="{y - 3}" text-anchor="end" fill="{c}">{ref}</text>')
        for k, prefix in enumerate(prefixes):
            colour = COLOURS[k % len(COLOURS)]
            pts = points.get(t, {}).get(prefix, [])
            if pts:
                path_d = " ".join(f"{'M' if n == 0 else 'L'}{X(b['tuples'])},{Y(r['final_success']['mean'])}"
                                  for n, (b, r) in enumerate(pts))
                out.append(f'<path d="{path_d}" fill="none" stroke="{colour}" stroke-width="2"/>')
            for b, r in pts:
                f = r["final_success"]
                # settings at the same budget side by side, not on top of each other
                x = X(b["tuples"]) + 4 * (k - (len(prefixes) - 1) / 2)
                out.append(f'<line x1="{x}" x2="{x}" y1="{Y(f["lo"])}" y2="{Y(f["hi"])}" stroke="{colour}"/>')
                out.append(f'<circle cx="{x}" cy="{Y(f["mean"])}" r="3" fill="{colour}"/>')
                out.append(f'<text x="{X(b["tuples"])}" y="{top + ph + 14}" text-anchor="middle" font-size="9">'
                           f'{b["steps"]}</text>')
    out.append(f'<text x="{left}" y="{height - 8}">numbers under each panel: pretraining steps</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, nargs="+", help="directories of OUT/TASK/results.json; the first wins")
    p.add_argument("--prefix", required=True,
                   help="comma-separated: checkpoint rows whose name starts with one of these form its curve")
    p.add_argument("--tasks", help="comma-separated tasks, in this order (default: all)")
    p.add_argument("--refs", default="random,state", help="rows drawn as references (default: random,state)")
    p.add_argument("--plot", type=Path)
    a = p.parse_args()
    refs = [r for r in a.refs.split(",") if r]
    prefixes = [x for x in a.prefix.split(",") if x]
    tasks, points, ref_rows = load(a.out, prefixes, refs, a.tasks.split(",") if a.tasks else None)
    if not any(points.get(t) for t in tasks):
        dirs = " ".join(str(o) for o in a.out)
        print(f"{dirs}: no checkpoint row named {'* or '.join(prefixes)}* in any results.json", file=sys.stderr)
        return 1
    print(table(tasks, prefixes, points, ref_rows, refs))
    if a.plot:
        plot(tasks, prefixes, points, ref_rows, refs, a.plot)
        print(f"plot: {a.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
