"""Read `r3m embed` output with pyarrow and with DuckDB, and join it to a LeRobot dataset's frames.

    python examples/python/read_embeddings.py EMBEDDINGS LEROBOT_ROOT

EMBEDDINGS is one .parquet file or a folder of `part-I-of-N.parquet` shards (both read as one
table). LEROBOT_ROOT is the LeRobot dataset the embeddings were made from (`r3m embed --lerobot`):
its frame table (data/chunk-*/episode_*.parquet or data/chunk-*/file-*.parquet) joins on
(episode_index, frame_index).
"""

import glob
import json
import sys

import duckdb
import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq

emb_path, root = sys.argv[1], sys.argv[2]

# --- pyarrow: one table over a file or a folder of shards ------------------------------------
table = ds.dataset(emb_path, format="parquet").to_table()
first = emb_path if emb_path.endswith(".parquet") else sorted(glob.glob(f"{emb_path}/*.parquet"))[0]
meta = {k.decode(): v.decode() for k, v in (pq.ParquetFile(first).metadata.metadata or {}).items()}
dim = int(meta["r3m.dim"])
E = np.asarray(table.column("embedding").combine_chunks().flatten()).reshape(-1, dim)
print(f"pyarrow: {table.num_rows} rows, {dim}-d, checkpoint {meta['r3m.checkpoint']}, lost frames {meta.get('r3m.lost_frames', '[]')}")
print(f"  episode 0 trajectory: {int((np.asarray(table.column('episode_index')) == 0).sum())} rows")

# --- DuckDB: SQL over the same files, joined to the LeRobot frame table --------------------------
emb_glob = emb_path if emb_path.endswith(".parquet") else f"{emb_path}/*.parquet"
frames_glob = f"{root}/data/*/*.parquet"
info = json.load(open(f"{root}/meta/info.json"))
con = duckdb.connect()
rows = con.execute(
    f"""
    SELECT f.episode_index, count(*) AS frames, count(e.frame_index) AS embedded,
           avg(list_dot_product(e.embedding, e.embedding)) AS mean_sq_norm
    FROM read_parquet('{frames_glob}') f
    LEFT JOIN read_parquet('{emb_glob}') e
      ON e.episode_index = f.episode_index AND e.frame_index = f.frame_index
    GROUP BY f.episode_index ORDER BY f.episode_index
    """
).fetchall()
print(f"duckdb: {len(rows)} episodes of {info['total_episodes']} (LeRobot {info['codebase_version']})")
for ep, n, k, sq in rows[:3]:
    print(f"  episode {ep}: {n} frames, {k} embedded, mean |e|^2 {sq:.3f}")
