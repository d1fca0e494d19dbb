"""A LeRobot v3.0 dataset written by LeRobot's own code from a folder of clips, for
benches/data_loader.rs: each clip becomes an episode (LeRobotDataset.create, add_frame,
save_episode, finalize), so the videos are LeRobot's encoding (libsvtav1, GOP 2, CRF 30, yuv420p,
many episodes per mp4) and the metadata LeRobot's. A 4-d zero state and action ride along (LeRobot
needs a non-video feature).
usage: make_lerobot_v30.py CLIPS_DIR OUT FPS
"""
import pathlib
import sys

import av
import numpy as np
from lerobot.datasets.lerobot_dataset import LeRobotDataset


def main():
    src, out, fps = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3])
    clips = sorted(src.glob("*.mp4"))
    with av.open(str(clips[0])) as v:
        s = v.streams.video[0]
        h, w = s.height, s.width
    features = {
        "observation.images.cam": {"dtype": "video", "shape": (h, w, 3), "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": (4,), "names": None},
        "action": {"dtype": "float32", "shape": (4,), "names": None},
    }
    ds = LeRobotDataset.create("bench/clips", fps=fps, features=features, root=out, use_videos=True)
    zero = np.zeros(4, np.float32)
    for c in clips:
        with av.open(str(c)) as v:
            for f in v.decode(video=0):
                ds.add_frame(
                    {"observation.images.cam": f.to_ndarray(format="rgb24"), "observation.state": zero, "action": zero,
                     "task": "bench"}
                )
        ds.save_episode()
    ds.finalize()


if __name__ == "__main__":
    main()
