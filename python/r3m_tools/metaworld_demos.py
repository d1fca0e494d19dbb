#!/usr/bin/env python3
"""Meta-World scripted-expert demonstrations, written as a LeRobot dataset (v2.1 or v3.0).

For each task, the scripted expert (`metaworld.policies`) is rolled out on layout seeds
`--seed`, `--seed`+1, ... (see `metaworld_env.py`: demonstration seeds are < 1_000_000,
evaluation seeds are >= 1_000_000) until `--episodes` successful episodes are kept or
`--max-attempts` seeds were tried. Failed episodes are dropped and counted. An episode ends
`--stop-on-success` frames after the first success (or fails at `--max-episode-steps`).

Every step renders the camera (same code as the Rust side's environment server), so a row of
the dataset holds the observation *before* the action: frame t, `observation.state` t (hand
xyz + gripper), `observation.environment_state` t (the env's full 39-d observation, the one
the expert acts on: hand, gripper, object poses, previous step's copy, goal; see
`metaworld_env.STATE_NAMES`), `action` t (the expert's, clipped to [-1, 1]), and what the
action led to: `next.reward`, `next.success`, `next.done` (true on the episode's last row).

Layouts written (`--format`):

v2.1 (default), one file per episode:
    meta/info.json            codebase_version "v2.1", data_path / video_path templates, features, ...
    meta/tasks.jsonl          {"task_index": i, "task": "<instruction>"}
    meta/episodes.jsonl       {"episode_index", "tasks": [...], "length", + metaworld_task, layout_seed, success_step}
    meta/episodes_stats.jsonl {"episode_index", "stats": {feature: {min, max, mean, std, count}}}
    data/chunk-000/episode_000000.parquet
    videos/chunk-000/observation.images.<camera>/episode_000000.mp4

v3.0, episodes concatenated into shared files (a new file when one passes the size limit):
    meta/info.json            codebase_version "v3.0", data_path / video_path templates, ...
    meta/tasks.parquet        task_index (int64), task (string; pandas index of the table)
    meta/stats.json           dataset-wide stats
    meta/episodes/chunk-000/file-000.parquet
        episode_index, tasks (list<string>), length, data/chunk_index, data/file_index,
        dataset_from_index, dataset_to_index (exclusive), videos/<key>/chunk_index,
        videos/<key>/file_index, videos/<key>/from_timestamp, videos/<key>/to_timestamp
        (seconds into the shared mp4, end exclusive), meta/episodes/chunk_index,
        meta/episodes/file_index, metaworld_task, layout_seed, success_step, stats/<feature>/<stat>
    data/chunk-000/file-000.parquet
    videos/observation.images.<camera>/chunk-000/file-000.mp4

Per-frame parquet columns (both formats): observation.state (fixed_size_list<float32>[4]),
observation.environment_state (fixed_size_list<float32>[39]), action
(fixed_size_list<float32>[4]), next.reward (float32), next.success (bool), next.done (bool),
timestamp (float32, frame_index / fps), frame_index (int64), episode_index (int64), index
(int64, global), task_index (int64).

Videos: H.264 through the ffmpeg CLI fed raw RGB on stdin, `--fps` frames/s, keyframe every
`--gop` frames, single-threaded (`-threads 1`) and bit-exact flags so the same arguments give
byte-identical files with the same ffmpeg build. `--codec lossless` (default): libx264rgb with
`-qp 0`, RGB kept as is (pix_fmt gbrp in the stream): decoding to rgb24 gives back exactly the
rendered frames, i.e. the pixels the bridge sends during evaluation rollouts (~10x the bytes of
CRF 23: ~3.4-4 KB per 128 px frame against ~0.36-0.39 KB). `--codec lossy`: libx264 yuv420p at
`--crf` (default 23), LeRobot's usual encoding (decodes to slightly different pixels). Parquet
and JSON content depends only on the arguments. The dataset is written into a temporary sibling
directory and renamed into place at the end; an interrupted run leaves nothing behind (rerun it:
output is deterministic).

Example:
    MUJOCO_GL=egl python python/r3m_tools/metaworld_demos.py --tasks drawer-open-v3,reach-v3 \
        --episodes 10 --size 128 --out datasets/mw_demo
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import metaworld_env as mwe  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

CHUNKS_SIZE = 1000  # LeRobot's DEFAULT_CHUNK_SIZE: files per chunk directory
V21_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V21_VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
V30_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
V30_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
V30_EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
ROBOT_TYPE = "sawyer"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------
# Rollouts


class Episode:
    def __init__(self, task: str, seed: int):
        self.task = task
        self.seed = seed
        self.frames: list[np.ndarray] = []
        self.states: list[np.ndarray] = []
        self.env_states: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []
        self.rewards: list[float] = []
        self.successes: list[bool] = []
        self.success_step: int | None = None  # row whose action first reached success

    def __len__(self) -> int:
        return len(self.actions)


def rollout(env: mwe.MetaWorldTask, seed: int, stop_on_success: int, render: bool = True) -> Episode:
    """Run the expert on layout `seed`; the episode ends `stop_on_success` rows after the first
    success, or at the env's step limit (then `success_step` is None)."""
    ep = Episode(env.task, seed)
    env.reset(seed)
    while env.steps < env.max_episode_steps:
        if render:
            ep.frames.append(env.render())
        ep.states.append(env.proprio())
        ep.env_states.append(env.state())
        action = env.expert_action()
        ep.actions.append(action)
        _, reward, success = env.step(action)
        ep.rewards.append(reward)
        ep.successes.append(success)
        if success and ep.success_step is None:
            ep.success_step = len(ep) - 1
        if ep.success_step is not None and len(ep) - 1 - ep.success_step >= stop_on_success:
            break
    return ep


# ------------------------------------------------------------------------------------------------
# Video


# Video encodings (`--codec`): the pixel format of the encoded stream (as ffprobe reports it).
CODECS = {"lossless": {"pix_fmt": "gbrp"}, "lossy": {"pix_fmt": "yuv420p"}}


def codec_description(codec: str, crf: int) -> str:
    return "libx264rgb qp 0 (lossless)" if codec == "lossless" else f"libx264 yuv420p crf {crf}"


class VideoWriter:
    """H.264 mp4 through the ffmpeg CLI, raw RGB frames on its stdin (`codec`: see CODECS)."""

    def __init__(self, path: Path, width: int, height: int, fps: int, crf: int, gop: int, codec: str = "lossless"):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.frames = 0
        self._log = tempfile.TemporaryFile()
        if codec == "lossless":  # RGB in, RGB (gbrp planes) out: no colour conversion, exact
            enc = ["-c:v", "libx264rgb", "-preset", "medium", "-qp", "0", "-g", str(gop), "-pix_fmt", "rgb24"]
        elif codec == "lossy":
            enc = ["-c:v", "libx264", "-preset", "medium", "-crf", str(crf), "-g", str(gop), "-pix_fmt", "yuv420p"]
        else:
            raise ValueError(f"unknown codec {codec!r} (lossless, lossy)")
        cmd = [
            "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-framerate", str(fps),
            "-i", "pipe:0",
            "-an", *enc, "-threads", "1",
            "-fflags", "+bitexact", "-flags:v", "+bitexact",
            "-movflags", "+faststart", "-f", "mp4", str(path),
        ]  # fmt: skip
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log)

    def write(self, frames) -> None:
        for frame in frames:
            try:
                self._proc.stdin.write(frame.tobytes())
            except BrokenPipeError:
                self._fail()
            self.frames += 1

    def close(self) -> None:
        self._proc.stdin.close()
        if self._proc.wait() != 0:
            self._fail()
        self._log.close()

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def _fail(self):
        self.kill()
        self._log.seek(0)
        msg = self._log.read().decode(errors="replace").strip()
        raise RuntimeError(f"ffmpeg failed writing {self.path}: {msg or 'no message'}")


# ------------------------------------------------------------------------------------------------
# Stats (LeRobot's min/max/mean/std/count per feature; images per channel in [0, 1], shape 3x1x1)


def array_stats(x: np.ndarray) -> dict:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    return {
        "min": x.min(0).tolist(),
        "max": x.max(0).tolist(),
        "mean": x.mean(0).tolist(),
        "std": x.std(0).tolist(),
        "count": [int(x.shape[0])],
    }


def image_stats(frames: list[np.ndarray], max_samples: int = 100, max_side: int = 96) -> dict:
    idx = np.linspace(0, len(frames) - 1, min(len(frames), max_samples)).round().astype(int)
    idx = np.unique(idx)
    stride = max(1, math.ceil(max(frames[0].shape[:2]) / max_side))
    x = np.stack([frames[i][::stride, ::stride] for i in idx]).astype(np.float64) / 255.0
    x = x.reshape(-1, 3)

    def per_channel(v):
        return [[[float(c)]] for c in v]

    return {
        "min": per_channel(x.min(0)),
        "max": per_channel(x.max(0)),
        "mean": per_channel(x.mean(0)),
        "std": per_channel(x.std(0)),
        "count": [len(idx)],
    }


def aggregate_stats(all_stats: list[dict]) -> dict:
    out = {}
    for key in all_stats[0]:
        parts = [s[key] for s in all_stats]
        counts = np.array([p["count"][0] for p in parts], dtype=np.float64)
        means = np.stack([np.asarray(p["mean"], dtype=np.float64) for p in parts])
        stds = np.stack([np.asarray(p["std"], dtype=np.float64) for p in parts])
        w = (counts / counts.sum()).reshape((-1,) + (1,) * (means.ndim - 1))
        mean = (w * means).sum(0)
        var = (w * (stds**2 + (means - mean) ** 2)).sum(0)
        out[key] = {
            "min": np.min(np.stack([np.asarray(p["min"]) for p in parts]), 0).tolist(),
            "max": np.max(np.stack([np.asarray(p["max"]) for p in parts]), 0).tolist(),
            "mean": mean.tolist(),
            "std": np.sqrt(var).tolist(),
            "count": [int(counts.sum())],
        }
    return out


# ------------------------------------------------------------------------------------------------
# Tables


def fixed_list(rows: list[np.ndarray], dim: int) -> pa.Array:
    flat = pa.array(np.asarray(rows, dtype=np.float32).reshape(-1), type=pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, dim)


FRAME_SCHEMA = pa.schema(
    [
        ("observation.state", pa.list_(pa.float32(), mwe.PROPRIO_DIM)),
        ("observation.environment_state", pa.list_(pa.float32(), mwe.STATE_DIM)),
        ("action", pa.list_(pa.float32(), mwe.ACTION_DIM)),
        ("next.reward", pa.float32()),
        ("next.success", pa.bool_()),
        ("next.done", pa.bool_()),
        ("timestamp", pa.float32()),
        ("frame_index", pa.int64()),
        ("episode_index", pa.int64()),
        ("index", pa.int64()),
        ("task_index", pa.int64()),
    ]
)


def hf_features_metadata() -> bytes:
    """The `huggingface` schema metadata HF `datasets` (and so LeRobot) reads the features from."""

    def value(dtype):
        return {"dtype": dtype, "_type": "Value"}

    def seq(dtype, n):
        return {"feature": value(dtype), "length": n, "_type": "Sequence"}

    features = {
        "observation.state": seq("float32", mwe.PROPRIO_DIM),
        "observation.environment_state": seq("float32", mwe.STATE_DIM),
        "action": seq("float32", mwe.ACTION_DIM),
        "next.reward": value("float32"),
        "next.success": value("bool"),
        "next.done": value("bool"),
        "timestamp": value("float32"),
        "frame_index": value("int64"),
        "episode_index": value("int64"),
        "index": value("int64"),
        "task_index": value("int64"),
    }
    return json.dumps({"info": {"features": features}}).encode()


def frame_table(ep: Episode, episode_index: int, global_start: int, task_index: int, fps: int) -> pa.Table:
    n = len(ep)
    frame_index = np.arange(n, dtype=np.int64)
    done = np.zeros(n, dtype=bool)
    done[-1] = True
    table = pa.Table.from_arrays(
        [
            fixed_list(ep.states, mwe.PROPRIO_DIM),
            fixed_list(ep.env_states, mwe.STATE_DIM),
            fixed_list(ep.actions, mwe.ACTION_DIM),
            pa.array(np.asarray(ep.rewards, dtype=np.float32)),
            pa.array(np.asarray(ep.successes, dtype=bool)),
            pa.array(done),
            pa.array((frame_index / fps).astype(np.float32)),
            pa.array(frame_index),
            pa.array(np.full(n, episode_index, dtype=np.int64)),
            pa.array(np.arange(global_start, global_start + n, dtype=np.int64)),
            pa.array(np.full(n, task_index, dtype=np.int64)),
        ],
        schema=FRAME_SCHEMA,
    )
    return table.replace_schema_metadata({b"huggingface": hf_features_metadata()})


def episode_stats(ep: Episode, table: pa.Table, video_key: str) -> dict:
    stats = {
        "observation.state": array_stats(np.asarray(ep.states)),
        "observation.environment_state": array_stats(np.asarray(ep.env_states)),
        "action": array_stats(np.asarray(ep.actions)),
        "next.reward": array_stats(np.asarray(ep.rewards)),
        "next.success": array_stats(np.asarray(ep.successes, dtype=np.float64)),
        "next.done": array_stats(table.column("next.done").to_numpy(zero_copy_only=False).astype(np.float64)),
    }
    for key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        stats[key] = array_stats(table.column(key).to_numpy())
    if ep.frames:
        stats[video_key] = image_stats(ep.frames)
    return stats


def features(video_key: str, size: int, fps: int, codec: str = "lossless", crf: int = 23) -> dict:
    scalar = {"shape": [1], "names": None}
    feats = {
        video_key: {
            "dtype": "video",
            "shape": [size, size, 3],
            "names": ["height", "width", "channels"],
            "info": {
                "video.height": size,
                "video.width": size,
                "video.codec": "h264",
                "video.pix_fmt": CODECS[codec]["pix_fmt"],
                "video.encoding": codec_description(codec, crf),
                "video.lossless": codec == "lossless",
                "video.is_depth_map": False,
                "video.fps": fps,
                "video.channels": 3,
                "has_audio": False,
            },
        },
        "observation.state": {"dtype": "float32", "shape": [mwe.PROPRIO_DIM], "names": mwe.PROPRIO_NAMES},
        "observation.environment_state": {"dtype": "float32", "shape": [mwe.STATE_DIM], "names": mwe.STATE_NAMES},
        "action": {"dtype": "float32", "shape": [mwe.ACTION_DIM], "names": mwe.ACTION_NAMES},
        "next.reward": {"dtype": "float32", **scalar},
        "next.success": {"dtype": "bool", **scalar},
        "next.done": {"dtype": "bool", **scalar},
        "timestamp": {"dtype": "float32", **scalar},
        "frame_index": {"dtype": "int64", **scalar},
        "episode_index": {"dtype": "int64", **scalar},
        "index": {"dtype": "int64", **scalar},
        "task_index": {"dtype": "int64", **scalar},
    }
    return feats


def tasks_parquet_table(tasks: list[str]) -> pa.Table:
    """meta/tasks.parquet as LeRobot writes it with pandas: column task_index, index `task`."""
    table = pa.table({"task_index": pa.array(range(len(tasks)), type=pa.int64()), "task": pa.array(tasks, pa.string())})
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object", "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=4) + "\n")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


# ------------------------------------------------------------------------------------------------
# Writers


class V21Writer:
    def __init__(self, root: Path, args, video_key: str):
        self.root, self.args, self.video_key = root, args, video_key
        self.episodes: list[dict] = []
        self.episode_stats: list[dict] = []
        self.total_frames = 0

    def add(self, ep: Episode, meta: dict, task_index: int) -> None:
        a, i = self.args, len(self.episodes)
        chunk = i // CHUNKS_SIZE
        video = VideoWriter(
            self.root / V21_VIDEO_PATH.format(episode_chunk=chunk, video_key=self.video_key, episode_index=i),
            a.size, a.size, a.fps, a.crf, a.gop, a.codec,
        )  # fmt: skip
        try:
            video.write(ep.frames)
            table = frame_table(ep, i, self.total_frames, task_index, a.fps)
            path = self.root / V21_DATA_PATH.format(episode_chunk=chunk, episode_index=i)
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, path)
            self.episode_stats.append({"episode_index": i, "stats": episode_stats(ep, table, self.video_key)})
            video.close()
        except BaseException:
            video.kill()
            raise
        self.episodes.append({"episode_index": i, "tasks": [meta["task"]], "length": len(ep), **meta["extra"]})
        self.total_frames += len(ep)

    def finish(self, tasks: list[str], info_extra: dict) -> None:
        n = len(self.episodes)
        info = {
            "codebase_version": "v2.1",
            "robot_type": ROBOT_TYPE,
            "total_episodes": n,
            "total_frames": self.total_frames,
            "total_tasks": len(tasks),
            "total_videos": n,
            "total_chunks": max(1, math.ceil(n / CHUNKS_SIZE)),
            "chunks_size": CHUNKS_SIZE,
            "fps": self.args.fps,
            "splits": {"train": f"0:{n}"},
            "data_path": V21_DATA_PATH,
            "video_path": V21_VIDEO_PATH,
            "features": features(self.video_key, self.args.size, self.args.fps, self.args.codec, self.args.crf),
            **info_extra,
        }
        write_json(self.root / "meta/info.json", info)
        write_jsonl(self.root / "meta/tasks.jsonl", [{"task_index": i, "task": t} for i, t in enumerate(tasks)])
        write_jsonl(self.root / "meta/episodes.jsonl", self.episodes)
        write_jsonl(self.root / "meta/episodes_stats.jsonl", self.episode_stats)

    def abort(self) -> None:
        pass


class V30Writer:
    def __init__(self, root: Path, args, video_key: str):
        self.root, self.args, self.video_key = root, args, video_key
        self.episodes: list[dict] = []
        self.all_stats: list[dict] = []
        self.total_frames = 0
        self.data_file = [0, 0]  # chunk, file
        self.data_tables: list[pa.Table] = []
        self.data_bytes = 0
        self.video_file = [0, 0]
        self.video: VideoWriter | None = None
        self.video_frames = 0  # frames already in the current video file

    @staticmethod
    def _advance(cursor: list[int]) -> None:
        cursor[1] += 1
        if cursor[1] == CHUNKS_SIZE:
            cursor[0], cursor[1] = cursor[0] + 1, 0

    def _flush_data(self) -> None:
        if not self.data_tables:
            return
        path = self.root / V30_DATA_PATH.format(chunk_index=self.data_file[0], file_index=self.data_file[1])
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.concat_tables(self.data_tables), path)
        self.data_tables, self.data_bytes = [], 0
        self._advance(self.data_file)

    def _close_video(self) -> None:
        if self.video is not None:
            self.video.close()
            self.video = None
            self.video_frames = 0
            self._advance(self.video_file)

    def add(self, ep: Episode, meta: dict, task_index: int) -> None:
        a, i = self.args, len(self.episodes)
        if self.video is not None and self.video.path.stat().st_size >= a.video_file_mb * 1024 * 1024:
            self._close_video()
        if self.data_bytes >= a.data_file_mb * 1024 * 1024:
            self._flush_data()
        if self.video is None:
            path = self.root / V30_VIDEO_PATH.format(
                video_key=self.video_key, chunk_index=self.video_file[0], file_index=self.video_file[1]
            )
            self.video = VideoWriter(path, a.size, a.size, a.fps, a.crf, a.gop, a.codec)
        from_ts = self.video_frames / a.fps
        self.video.write(ep.frames)
        self.video_frames += len(ep)
        table = frame_table(ep, i, self.total_frames, task_index, a.fps)
        data_file = list(self.data_file)
        self.data_tables.append(table)
        self.data_bytes += table.nbytes
        stats = episode_stats(ep, table, self.video_key)
        self.all_stats.append(stats)
        row = {
            "episode_index": i,
            "tasks": [meta["task"]],
            "length": len(ep),
            "data/chunk_index": data_file[0],
            "data/file_index": data_file[1],
            "dataset_from_index": self.total_frames,
            "dataset_to_index": self.total_frames + len(ep),
            f"videos/{self.video_key}/chunk_index": self.video_file[0],
            f"videos/{self.video_key}/file_index": self.video_file[1],
            f"videos/{self.video_key}/from_timestamp": from_ts,
            f"videos/{self.video_key}/to_timestamp": self.video_frames / a.fps,
            "meta/episodes/chunk_index": 0,
            "meta/episodes/file_index": 0,
            **meta["extra"],
        }
        for feat, st in stats.items():
            for name, value in st.items():
                row[f"stats/{feat}/{name}"] = value
        self.episodes.append(row)
        self.total_frames += len(ep)

    def finish(self, tasks: list[str], info_extra: dict) -> None:
        self._flush_data()
        self._close_video()
        n = len(self.episodes)
        info = {
            "codebase_version": "v3.0",
            "robot_type": ROBOT_TYPE,
            "total_episodes": n,
            "total_frames": self.total_frames,
            "total_tasks": len(tasks),
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": _num(self.args.data_file_mb),
            "video_files_size_in_mb": _num(self.args.video_file_mb),
            "fps": self.args.fps,
            "splits": {"train": f"0:{n}"},
            "data_path": V30_DATA_PATH,
            "video_path": V30_VIDEO_PATH,
            "features": features(self.video_key, self.args.size, self.args.fps, self.args.codec, self.args.crf),
            **info_extra,
        }
        write_json(self.root / "meta/info.json", info)
        path = self.root / "meta/tasks.parquet"
        pq.write_table(tasks_parquet_table(tasks), path)
        if n:
            write_json(self.root / "meta/stats.json", aggregate_stats(self.all_stats))
            cols = {key: [row[key] for row in self.episodes] for key in self.episodes[0]}
            table = pa.table(cols)
            path = self.root / V30_EPISODES_PATH.format(chunk_index=0, file_index=0)
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, path)

    def abort(self) -> None:
        if self.video is not None:
            self.video.kill()


# ------------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--tasks", default="drawer-open-v3", help="comma-separated Meta-World v3 tasks (e.g. drawer-open-v3,reach-v3)"
    )
    p.add_argument("--episodes", type=int, default=10, help="successful episodes to keep per task")
    p.add_argument(
        "--max-attempts", type=int, default=None, help="layout seeds to try per task (default 2*episodes+10)"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="first layout seed; task episodes use seed, seed+1, ... (< 1_000_000)"
    )
    p.add_argument("--size", type=int, default=mwe.DEFAULT_SIZE, help="square image side in pixels (even)")
    p.add_argument(
        "--camera",
        default=mwe.DEFAULT_CAMERA,
        help=f"camera: {', '.join(mwe.camera_names())} (default {mwe.DEFAULT_CAMERA}, see metaworld_env.py)",
    )
    p.add_argument("--fps", type=int, default=30, help="video frame rate; timestamps are frame_index / fps")
    p.add_argument("--format", choices=["v2.1", "v3.0"], default="v2.1", help="LeRobot dataset layout")
    p.add_argument("--out", required=True, help="output dataset directory")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--max-episode-steps", type=int, default=mwe.DEFAULT_MAX_EPISODE_STEPS)
    p.add_argument("--stop-on-success", type=int, default=10, help="frames kept after the first success")
    p.add_argument(
        "--codec",
        choices=["lossless", "lossy"],
        default="lossless",
        help="lossless: libx264rgb -qp 0, decodes to exactly the rendered RGB (default); lossy: libx264 yuv420p --crf",
    )
    p.add_argument("--crf", type=int, default=23, help="--codec lossy: x264 quality (lower is better and bigger)")
    p.add_argument("--gop", type=int, default=30, help="keyframe interval in frames")
    p.add_argument("--video-file-mb", type=float, default=200, help="v3.0: start a new video file past this size")
    p.add_argument("--data-file-mb", type=float, default=100, help="v3.0: start a new data file past this size")
    a = p.parse_args(argv)
    a.tasks = [t.strip() for t in a.tasks.split(",") if t.strip()]
    known = set(mwe.task_names())
    bad = [t for t in a.tasks if t not in known]
    if bad:
        p.error(f"unknown task(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
    if len(set(a.tasks)) != len(a.tasks):
        p.error("--tasks lists a task twice")
    if a.episodes < 1:
        p.error("--episodes must be >= 1")
    if a.max_attempts is None:
        a.max_attempts = 2 * a.episodes + 10
    if a.max_attempts < a.episodes:
        p.error("--max-attempts must be >= --episodes")
    if a.seed < mwe.DEMO_SEED_MIN or a.seed + a.max_attempts > mwe.EVAL_SEED_MIN:
        p.error(f"demonstration seeds must stay in [0, {mwe.EVAL_SEED_MIN}) (evaluation layouts start there)")
    if a.size < 2 or a.size % 2:
        p.error("--size must be an even number >= 2")
    if a.video_file_mb <= 0 or a.data_file_mb <= 0:
        p.error("--video-file-mb and --data-file-mb must be positive")
    if a.fps < 1 or a.gop < 1 or a.stop_on_success < 0 or a.max_episode_steps < 1:
        p.error("--fps, --gop, --max-episode-steps must be >= 1 and --stop-on-success >= 0")
    if shutil.which("ffmpeg") is None:
        p.error("the ffmpeg CLI is not on PATH")
    return a


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    a = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # clean up on `kill` as on Ctrl-C
    out = Path(a.out).resolve()
    if out.exists() and not a.overwrite:
        log(f"error: {out} exists (pass --overwrite to replace it)")
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    video_key = f"observation.images.{a.camera}"
    writer = (V21Writer if a.format == "v2.1" else V30Writer)(tmp, a, video_key)
    descriptions = [mwe.task_description(t) for t in a.tasks]
    if len(set(descriptions)) != len(descriptions):
        descriptions = list(a.tasks)
    report = {}
    t_start = time.time()
    frames_done = 0
    try:
        for task_index, (task, desc) in enumerate(zip(a.tasks, descriptions)):
            env = mwe.MetaWorldTask(task, camera=a.camera, size=a.size, max_episode_steps=a.max_episode_steps)
            tried = kept = 0
            failed_seeds = []
            for seed in range(a.seed, a.seed + a.max_attempts):
                if kept == a.episodes:
                    break
                t0 = time.time()
                ep = rollout(env, seed, a.stop_on_success)
                t_roll = time.time() - t0
                tried += 1
                if ep.success_step is None:
                    failed_seeds.append(seed)
                    log(f"[{task}] seed {seed}: expert failed within {a.max_episode_steps} steps, dropped")
                    continue
                extra = {"metaworld_task": task, "layout_seed": seed, "success_step": ep.success_step}
                writer.add(ep, {"task": desc, "extra": extra}, task_index)
                kept += 1
                frames_done += len(ep)
                dt = time.time() - t0
                log(
                    f"[{task}] episode {kept}/{a.episodes} seed {seed}: success at step {ep.success_step}, "
                    f"{len(ep)} frames, {dt:.1f}s ({len(ep) / t_roll:.0f} frames/s rollout, "
                    f"{len(ep) / dt:.0f} with writing); total {len(writer.episodes)} episodes, "
                    f"{frames_done / (time.time() - t_start):.0f} frames/s overall"
                )
            env.close()
            report[task] = {"tried": tried, "kept": kept, "failed_seeds": failed_seeds}
            if kept < a.episodes:
                log(f"[{task}] warning: only {kept} of {a.episodes} episodes after {tried} seeds")
        info_extra = {
            "metaworld": {
                "generator": "python/r3m_tools/metaworld_demos.py",
                "metaworld_version": _version("metaworld"),
                "mujoco_version": _version("mujoco"),
                "camera": a.camera,
                "camera_pose": _camera_pose(a.camera),
                "image_size": a.size,
                "video_codec": codec_description(a.codec, a.crf),
                "first_layout_seed": a.seed,
                "episodes_per_task": a.episodes,
                "max_attempts": a.max_attempts,
                "eval_layout_seed_min": mwe.EVAL_SEED_MIN,
                "max_episode_steps": a.max_episode_steps,
                "stop_on_success": a.stop_on_success,
                "proprio": "obs[:4] = hand xyz + gripper opening",
                "environment_state": (
                    "obs[0:39]: hand xyz, gripper, obj1 pos+quat, obj2 pos+quat, previous step's obs[0:18], goal xyz"
                ),
                "tasks": {t: {"task": d, **report[t]} for t, d in zip(a.tasks, descriptions)},
            }
        }
        writer.finish(descriptions, info_extra)
    except BaseException:
        writer.abort()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        out.rename(old)
    tmp.rename(out)
    if old is not None:
        shutil.rmtree(old)
    dt = time.time() - t_start
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    for task, r in report.items():
        log(f"{task}: kept {r['kept']} of {r['tried']} tried")
    log(
        f"wrote {out} ({a.format}): {len(writer.episodes)} episodes, {writer.total_frames} frames, "
        f"{size / 1e6:.2f} MB in {dt:.1f}s ({writer.total_frames / dt:.0f} frames/s, "
        f"{dt / max(1, len(writer.episodes)):.2f} s/episode)"
    )
    return 0


def _camera_pose(camera: str):
    v = mwe.VIRTUAL_CAMERAS.get(camera)
    if v is None:
        return None
    return {"base": v["base"], "pos": v["pos"], "quat": [round(q, 6) for q in v["quat"]], "fovy": v["fovy"]}


def _num(x: float):
    return int(x) if float(x).is_integer() else x


def _version(pkg: str) -> str:
    from importlib.metadata import version

    try:
        return version(pkg)
    except Exception:
        return "unknown"


if __name__ == "__main__":
    try:
        code = main()
    except KeyboardInterrupt:
        log("interrupted: nothing written (the temporary directory was removed)")
        code = 130
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: MuJoCo/EGL objects destroyed at exit raise noisy EGL errors.
    os._exit(code)
