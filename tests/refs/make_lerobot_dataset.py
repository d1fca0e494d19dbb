"""A LeRobot v3.0 dataset written by LeRobot's own code (LeRobotDataset.create, add_frame,
save_episode, finalize: its AV1 encoder, GOP 2, CRF 30, its statistics), from the first EPISODES
episodes of the Meta-World dataset SRC (LeRobot v2.1, as datasets/make_metaworld.sh writes it).
usage: make_lerobot_dataset.py SRC OUT EPISODES
"""
import json
import pathlib
import sys

import av
import numpy as np
import pyarrow.parquet as pq
from lerobot.datasets.lerobot_dataset import LeRobotDataset


def main():
    src, out, n_eps = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3])
    info = json.loads((src / "meta/info.json").read_text())
    cam = next(k for k, v in info["features"].items() if v["dtype"] == "video")
    h, w, _ = info["features"][cam]["shape"]
    features = {
        "observation.image": {"dtype": "video", "shape": (h, w, 3), "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": (4,), "names": None},
        "action": {"dtype": "float32", "shape": (4,), "names": None},
    }
    ds = LeRobotDataset.create("r3m/source", fps=info["fps"], features=features, root=out, robot_type="sawyer")
    episodes = [json.loads(line) for line in (src / "meta/episodes.jsonl").read_text().splitlines()][:n_eps]
    for ep in episodes:
        i = ep["episode_index"]
        rows = pq.read_table(src / f"data/chunk-000/episode_{i:06d}.parquet").to_pydict()
        with av.open(str(src / f"videos/chunk-000/{cam}/episode_{i:06d}.mp4")) as v:
            frames = [f.to_ndarray(format="rgb24") for f in v.decode(video=0)]
        for k in range(len(rows["action"])):
            ds.add_frame(
                {
                    "observation.image": frames[k],
                    "observation.state": np.array(rows["observation.state"][k], np.float32),
                    "action": np.array(rows["action"][k], np.float32),
                    "task": ep["tasks"][0],
                }
            )
        ds.save_episode()
    ds.finalize()


if __name__ == "__main__":
    main()
