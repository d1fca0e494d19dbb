"""Python peer for benches/embed.rs: the usual embedding-export pipeline, PyAV decode → torchvision
Resize(short side)+CenterCrop on the decoded frames → torchvision ResNet in eval mode under
no_grad → pyarrow Parquet with the same columns (video, frame_index, timestamp, index, embedding).
usage: bench_py_embed.py OUT.parquet SIZE BATCH THREADS MODE VIDEO...
MODE: fp32 (NCHW, the usual recipe), fp32-cl (channels_last) or bf16-cl (CPU/CUDA autocast).
Prints JSON: frames, seconds (model built before the clock starts).
"""
import json
import sys
import time

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torchvision
from torchvision.transforms import functional as F


def main():
    out, size, batch, threads, mode, videos = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6:]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None)
    net.fc = torch.nn.Identity()
    net.eval()
    fmt = torch.channels_last if mode.endswith("-cl") else torch.contiguous_format
    net = net.to(memory_format=fmt)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    short = size * 8 // 7
    cols = {"video": [], "frame_index": [], "timestamp": [], "index": [], "embedding": []}

    def run(frames):
        x = torch.stack(frames).float().div(255.0).sub(mean).div(std).contiguous(memory_format=fmt)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16-cl"):
            e = net(x)
        return e.float().numpy()

    t0 = time.perf_counter()
    n = 0
    for v in videos:
        with av.open(v) as c:
            s = c.streams.video[0]
            s.thread_count = 1
            pending, meta = [], []
            for i, fr in enumerate(c.decode(s)):
                img = torch.from_numpy(fr.to_ndarray(format="rgb24")).permute(2, 0, 1)
                img = F.center_crop(F.resize(img, short, antialias=False), [size, size])
                pending.append(img)
                meta.append((i, float(fr.time)))
                if len(pending) == batch:
                    emb = run(pending)
                    for (fi, t), e in zip(meta, emb):
                        cols["video"].append(v)
                        cols["frame_index"].append(fi)
                        cols["timestamp"].append(t)
                        cols["index"].append(n)
                        cols["embedding"].append(e)
                        n += 1
                    pending, meta = [], []
            if pending:
                emb = run(pending)
                for (fi, t), e in zip(meta, emb):
                    cols["video"].append(v)
                    cols["frame_index"].append(fi)
                    cols["timestamp"].append(t)
                    cols["index"].append(n)
                    cols["embedding"].append(e)
                    n += 1
    dim = len(cols["embedding"][0])
    flat = pa.array(np.stack(cols["embedding"]).reshape(-1), pa.float32())
    table = pa.table({
        "video": cols["video"], "frame_index": pa.array(cols["frame_index"], pa.int64()),
        "timestamp": pa.array(cols["timestamp"], pa.float64()), "index": pa.array(cols["index"], pa.int64()),
        "embedding": pa.FixedSizeListArray.from_arrays(flat, dim),
    })
    pq.write_table(table, out, compression="zstd")
    print(json.dumps({"frames": n, "seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
