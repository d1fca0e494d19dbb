#!/usr/bin/env python3
"""README table from `r3m eval bc` runs: one column per task, one row per encoder.

usage: eval_table.py OUT [--demos N] [--tasks a,b] [--rows a,b] [--vs ROW] [--plot FILE.svg]

Reads OUT/TASK/results.json (format r3m-eval-bc-3, or -2 from older r3m, as written by `r3m eval bc --out OUT/TASK`) and
prints a Markdown table. Each cell is the final success with its 95% interval over seeds and
layouts (computed by r3m) and, below it, the paired difference from the frozen random
encoder on the same seeds and layouts (with --vs ROW, also the paired difference from ROW, as
`r3m eval bc --vs ROW` computed it). An incomplete task (cells still to run) is marked with *.
With --plot FILE.svg, also draws success with intervals per encoder and task (plain SVG, no dependencies).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def signed(x: float) -> str:
    """Points with their sign; a bound that rounds to 0 keeps it (+0, -0) so that whether an
    interval excludes zero stays visible."""
    v = round(100 * x)
    if v == 0:
        return "+0" if x > 0 else ("-0" if x < 0 else "0")
    return f"+{v}" if v > 0 else f"{v}"


def load(out: Path, demos: int | None, only: list[str] | None = None):
    tasks, rows, meta = [], {}, {}
    for f in sorted(out.glob("*/results.json")):
        r = json.loads(f.read_text())
        if r.get("format") not in ("r3m-eval-bc-2", "r3m-eval-bc-3"):
            print(f"{f}: format {r.get('format')!r}, skipped", file=sys.stderr)
            continue
        task = r["protocol"]["task"]
        if only and task not in only:
            continue
        tasks.append(task)
        meta[task] = {"complete": r["complete"], "protocol": r["protocol"]}
        for row in r["rows"]:
            if demos is not None and row["demos"] != demos:
                continue
            rows.setdefault(row["encoder"], {})[task] = row
    return tasks, rows, meta


def table(tasks, rows, meta, vs: list[str] | None = None) -> str:
    head = "| encoder | " + " | ".join(t + ("*" if not meta[t]["complete"] else "") for t in tasks) + " |"
    lines = [head, "| --- |" + " ---: |" * len(tasks)]
    for enc, by in rows.items():
        cells = []
        for t in tasks:
            r = by.get(t)
            if r is None:
                cells.append("–")
                continue
            f = r["final_success"]
            s = f"{pct(f['mean'])} ({pct(f['lo'])}–{pct(f['hi'])})"
            d = r.get("vs_random")
            if d is not None:
                s += f"<br>Δ {signed(d['mean'])} ({signed(d['lo'])}…{signed(d['hi'])})"
            for v in vs or []:
                d = r.get("vs", {}).get(v)
                if d is not None:
                    s += f"<br>Δ {v} {signed(d['mean'])} ({signed(d['lo'])}…{signed(d['hi'])})"
            s += f"<br>{len(r['seeds'])}×{meta[t]['protocol']['rollouts']}"
            cells.append(s)
        lines.append(f"| {enc} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


COLOURS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd"]


def plot(tasks, rows, path: Path) -> None:
    """Grouped bars of final success with their 95% intervals, one group per task (SVG)."""
    encs = list(rows)
    gw, left, top, h = 40 + 22 * len(encs), 50, 20, 200
    width = left + gw * len(tasks) + 20
    legend_y = top + h + 40
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{legend_y + 18 * ((len(encs) + 3) // 4) + 10}" '
           'font-family="sans-serif" font-size="11">', '<rect width="100%" height="100%" fill="white"/>']
    for v in range(0, 101, 25):
        y = top + h - h * v / 100
        out.append(f'<line x1="{left}" x2="{width - 10}" y1="{y}" y2="{y}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end">{v}%</text>')
    for j, t in enumerate(tasks):
        x0 = left + gw * j + 20
        out.append(f'<text x="{x0 + 11 * len(encs)}" y="{top + h + 16}" text-anchor="middle">{t}</text>')
        for i, e in enumerate(encs):
            r = rows[e].get(t)
            if r is None:
                continue
            f = r["final_success"]
            x = x0 + 22 * i
            y = top + h - h * f["mean"]
            out.append(f'<rect x="{x}" y="{y}" width="18" height="{top + h - y}" fill="{COLOURS[i % len(COLOURS)]}"/>')
            ylo, yhi = top + h - h * f["lo"], top + h - h * f["hi"]
            out.append(f'<line x1="{x + 9}" x2="{x + 9}" y1="{ylo}" y2="{yhi}" stroke="black"/>')
            out.append(f'<line x1="{x + 5}" x2="{x + 13}" y1="{ylo}" y2="{ylo}" stroke="black"/>')
            out.append(f'<line x1="{x + 5}" x2="{x + 13}" y1="{yhi}" y2="{yhi}" stroke="black"/>')
    for i, e in enumerate(encs):
        x, y = left + 150 * (i % 4), legend_y + 18 * (i // 4)
        out.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{COLOURS[i % len(COLOURS)]}"/>')
        out.append(f'<text x="{x + 16}" y="{y}">{e}</text>')
    out.append(f'<text x="{left}" y="12">final success, 95% intervals over seeds and layouts</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path)
    p.add_argument("--demos", type=int)
    p.add_argument("--plot", type=Path)
    p.add_argument("--rows", help="comma-separated rows to show, in this order (default: all, as listed)")
    p.add_argument("--vs", help="comma-separated rows whose paired differences (eval bc --vs) to show too")
    p.add_argument("--tasks", help="comma-separated tasks to show, in this order (default: all)")
    a = p.parse_args()
    only = a.tasks.split(",") if a.tasks else None
    tasks, rows, meta = load(a.out, a.demos, only)
    if only:
        tasks = [t for t in only if t in tasks]
    if a.rows:
        rows = {e: rows[e] for e in a.rows.split(",") if e in rows}
    if not tasks:
        print(f"{a.out}: no results.json under it", file=sys.stderr)
        return 1
    print(table(tasks, rows, meta, a.vs.split(",") if a.vs else None))
    if a.plot:
        plot(tasks, rows, a.plot)
        print(f"plot: {a.plot}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
