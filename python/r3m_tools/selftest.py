#!/usr/bin/env python3
"""Self-check of the Python side of Meta-World support (20-40 s on 2 CPU cores).

1. Generates a tiny dataset (1 task, 2 episodes, 64 px, default camera and lossless codec) in
   LeRobot v2.1 and v3.0 and checks info.json, the metadata files, the parquet columns and their
   values (incl. the 39-d observation.environment_state), that ffprobe counts as many video
   frames as parquet rows per episode (v2.1) / per file (v3.0, where the episodes' from/to
   timestamps must tile the file), and that both formats hold the same rows.
2. Runs the bridge (protocol 2) as a subprocess, resets with a demonstration seed, drives it
   with `expert` actions until done, and checks success within the step limit; checks the frames
   are not black and are byte-equal to the generator's frames for the same seed, that proprio and
   state match `observation.state` / `observation.environment_state`, that the decoded (lossless)
   video is byte-equal to the raw frames, and that bad requests get errors without killing the
   server. A second bridge on the scene camera corner4 (as the Rust tests start it) still serves
   upright, non-black frames, and `--codec lossy` still writes a yuv420p video close to them.

Exit status 0 when everything passes, 1 otherwise.
    MUJOCO_GL=egl python python/r3m_tools/selftest.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

TASK = "reach-v3"
EPISODES = 2
SIZE = 64
FPS = 30
SEED = 0
STOP_ON_SUCCESS = 5
CAMERA = "corner2-close"  # metaworld_env.DEFAULT_CAMERA
VIDEO_KEY = f"observation.images.{CAMERA}"
FRAME_COLUMNS = [
    "observation.state", "observation.environment_state", "action", "next.reward", "next.success", "next.done",
    "timestamp", "frame_index", "episode_index", "index", "task_index",
]  # fmt: skip

failures: list[str] = []


def check(cond, what: str) -> bool:
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}", flush=True)
    return bool(cond)


def ffprobe_frames(path: Path) -> int:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return int(out.strip().strip(","))


def decode(path: Path) -> np.ndarray:
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(-1, SIZE, SIZE, 3)


def generate(out: Path, fmt: str, *extra: str) -> None:
    cmd = [
        sys.executable, str(HERE / "metaworld_demos.py"), "--tasks", TASK, "--episodes", str(EPISODES),
        "--size", str(SIZE), "--fps", str(FPS), "--seed", str(SEED), "--format", fmt,
        "--stop-on-success", str(STOP_ON_SUCCESS), "--out", str(out), *extra,
    ]  # fmt: skip
    t0 = time.time()
    subprocess.run(cmd, check=True)
    print(f"generated {fmt} in {time.time() - t0:.1f}s", flush=True)


def check_frames(table: pa.Table, episode_index: int, start: int, what: str) -> None:
    n = table.num_rows
    check(table.column_names == FRAME_COLUMNS, f"{what}: columns {table.column_names}")
    check(table.schema.field("observation.state").type == pa.list_(pa.float32(), 4), f"{what}: state type")
    check(table.schema.field("action").type == pa.list_(pa.float32(), 4), f"{what}: action type")
    env_type = table.schema.field("observation.environment_state").type
    check(env_type == pa.list_(pa.float32(), 39), f"{what}: environment_state type")
    state = np.stack(table.column("observation.state").to_numpy(zero_copy_only=False))
    env_state = np.stack(table.column("observation.environment_state").to_numpy(zero_copy_only=False))
    check(np.array_equal(state, env_state[:, :4]), f"{what}: observation.state == environment_state[:4]")
    check(np.array_equal(env_state[1:, 18:36], env_state[:-1, 0:18]), f"{what}: env state [18:36] = previous [0:18]")
    goal = env_state[:, 36:39]
    check(np.ptp(goal, axis=0).max() == 0 and np.abs(goal[0]).sum() > 0, f"{what}: fixed, non-zero goal")
    fi = table.column("frame_index").to_numpy()
    check(np.array_equal(fi, np.arange(n)), f"{what}: frame_index 0..n-1")
    check(np.array_equal(table.column("index").to_numpy(), np.arange(start, start + n)), f"{what}: global index")
    check(np.all(table.column("episode_index").to_numpy() == episode_index), f"{what}: episode_index")
    ts = table.column("timestamp").to_numpy()
    check(ts.dtype == np.float32 and np.allclose(ts, fi / FPS, atol=1e-6), f"{what}: timestamp = frame_index/fps")
    actions = np.stack(table.column("action").to_numpy(zero_copy_only=False))
    check(np.all(np.abs(actions) <= 1.0), f"{what}: actions in [-1, 1]")
    success = table.column("next.success").to_numpy(zero_copy_only=False)
    done = table.column("next.done").to_numpy(zero_copy_only=False)
    check(success.any() and success[-1], f"{what}: episode ends in success")
    first = int(np.argmax(success))
    check(n == first + 1 + STOP_ON_SUCCESS, f"{what}: {STOP_ON_SUCCESS} rows kept after the first success")
    check(done[-1] and not done[:-1].any(), f"{what}: next.done only on the last row")


def check_v21(root: Path) -> tuple[pa.Table, list[dict]]:
    info = json.loads((root / "meta/info.json").read_text())
    key = VIDEO_KEY
    for k in ["codebase_version", "robot_type", "total_episodes", "total_frames", "total_tasks", "total_videos",
              "total_chunks", "chunks_size", "fps", "splits", "data_path", "video_path", "features"]:  # fmt: skip
        check(k in info, f"v2.1 info.json has {k}")
    check(info["codebase_version"] == "v2.1", "v2.1 codebase_version")
    check(info["total_episodes"] == EPISODES and info["fps"] == FPS, "v2.1 totals/fps")
    check(info["features"][key]["shape"] == [SIZE, SIZE, 3], "v2.1 video feature shape")
    check(info["features"][key]["info"]["video.pix_fmt"] == "gbrp", "v2.1 video feature: lossless gbrp")
    es = info["features"].get("observation.environment_state", {})
    check(es.get("shape") == [39] and len(es.get("names", [])) == 39, "v2.1 environment_state feature")
    mw = info.get("metaworld", {})
    check(mw.get("camera") == CAMERA and "lossless" in mw.get("video_codec", ""), f"v2.1 metaworld block {mw}")
    episodes = [json.loads(line) for line in (root / "meta/episodes.jsonl").read_text().splitlines()]
    tasks = [json.loads(line) for line in (root / "meta/tasks.jsonl").read_text().splitlines()]
    stats = [json.loads(line) for line in (root / "meta/episodes_stats.jsonl").read_text().splitlines()]
    check(tasks == [{"task_index": 0, "task": "reach the goal position"}], f"v2.1 tasks.jsonl {tasks}")
    check(len(episodes) == EPISODES and len(stats) == EPISODES, "v2.1 episodes.jsonl / episodes_stats.jsonl rows")
    tables, start = [], 0
    for ep in episodes:
        i = ep["episode_index"]
        data = root / info["data_path"].format(episode_chunk=0, episode_index=i)
        video = root / info["video_path"].format(episode_chunk=0, video_key=key, episode_index=i)
        table = pq.read_table(data)
        check_frames(table, i, start, f"v2.1 episode {i}")
        check(table.num_rows == ep["length"], f"v2.1 episode {i}: length {ep['length']} = rows {table.num_rows}")
        frames = ffprobe_frames(video)
        check(frames == table.num_rows, f"v2.1 episode {i}: video frames {frames} = rows {table.num_rows}")
        check(ep["tasks"] == ["reach the goal position"] and ep["layout_seed"] == SEED + i, f"v2.1 episode {i} meta")
        check(stats[i]["stats"]["observation.state"]["count"] == [table.num_rows], f"v2.1 episode {i} stats count")
        check(len(stats[i]["stats"]["observation.environment_state"]["mean"]) == 39, f"v2.1 episode {i} env stats")
        tables.append(table)
        start += table.num_rows
    check(info["total_frames"] == start, f"v2.1 total_frames {info['total_frames']} = {start}")
    return pa.concat_tables(tables), episodes


def check_v30(root: Path) -> pa.Table:
    info = json.loads((root / "meta/info.json").read_text())
    key = VIDEO_KEY
    for k in ["codebase_version", "robot_type", "total_episodes", "total_frames", "total_tasks", "chunks_size",
              "data_files_size_in_mb", "video_files_size_in_mb", "fps", "splits", "data_path", "video_path",
              "features"]:  # fmt: skip
        check(k in info, f"v3.0 info.json has {k}")
    check(info["codebase_version"] == "v3.0", "v3.0 codebase_version")
    tasks = pq.read_table(root / "meta/tasks.parquet").to_pylist()
    check(tasks == [{"task_index": 0, "task": "reach the goal position"}], f"v3.0 tasks.parquet {tasks}")
    check((root / "meta/stats.json").is_file(), "v3.0 meta/stats.json")
    eps = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    check(len(eps) == EPISODES, "v3.0 episodes rows")
    needed = ["episode_index", "tasks", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
              "dataset_to_index", f"videos/{key}/chunk_index", f"videos/{key}/file_index",
              f"videos/{key}/from_timestamp", f"videos/{key}/to_timestamp"]  # fmt: skip
    for k in needed:
        check(k in eps[0], f"v3.0 episodes column {k}")
    data = pq.read_table(root / info["data_path"].format(chunk_index=0, file_index=0))
    video = root / info["video_path"].format(video_key=key, chunk_index=0, file_index=0)
    check(data.num_rows == info["total_frames"], "v3.0 total_frames = data rows")
    offset = 0
    for ep in eps:
        i, n = ep["episode_index"], ep["length"]
        check(
            ep["dataset_from_index"] == offset and ep["dataset_to_index"] == offset + n, f"v3.0 episode {i} index range"
        )
        check(abs(ep[f"videos/{key}/from_timestamp"] - offset / FPS) < 1e-9, f"v3.0 episode {i} from_timestamp")
        check(abs(ep[f"videos/{key}/to_timestamp"] - (offset + n) / FPS) < 1e-9, f"v3.0 episode {i} to_timestamp")
        check_frames(data.slice(offset, n), i, offset, f"v3.0 episode {i}")
        offset += n
    frames = ffprobe_frames(video)
    check(frames == data.num_rows, f"v3.0 video frames {frames} = rows {data.num_rows}")
    return data


class Bridge:
    def __init__(self, camera: str | None = CAMERA):
        self.p = subprocess.Popen(
            [sys.executable, str(HERE / "metaworld_bridge.py"), "--task", TASK, "--size", str(SIZE),
             "--max-episode-steps", "500", *(["--camera", camera] if camera else [])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        self.hello = self._read()[0]

    def _read(self):
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError("bridge closed stdout")
        header = json.loads(line)
        n = header.get("frame_bytes", 0)
        frame = self.p.stdout.read(n) if n else None
        return header, frame

    def __call__(self, req) -> tuple[dict, bytes | None]:
        self.p.stdin.write((req if isinstance(req, str) else json.dumps(req)).encode() + b"\n")
        self.p.stdin.flush()
        return self._read()


def check_bridge(episodes: list[dict], video: Path) -> None:
    import metaworld_demos
    import metaworld_env as mwe

    env = mwe.MetaWorldTask(TASK, camera=CAMERA, size=SIZE)
    ref = metaworld_demos.rollout(env, SEED, STOP_ON_SUCCESS)  # the generator's episode for this seed
    check(ref.success_step == episodes[0]["success_step"], "in-process rollout = generated episode 0")

    b = Bridge(camera=None)  # the default camera
    h = b.hello
    check(h.get("hello") == "r3m-metaworld-bridge" and h.get("version") == 2, f"bridge hello {h}")
    check(h.get("camera") == CAMERA and h.get("state_dim") == 39, f"bridge hello camera/state_dim {h}")
    check(
        (h.get("width"), h.get("height"), h.get("action_dim"), h.get("proprio_dim")) == (SIZE, SIZE, 4, 4), "hello dims"
    )
    r, f = b({"cmd": "step", "action": [0, 0, 0, 0]})
    check(r == {"ok": False, "error": r.get("error")} and f is None, "step before reset is an error")
    r, _ = b("{not json")
    check(r.get("ok") is False, "bad JSON is an error")
    r, _ = b({"cmd": "fly"})
    check(r.get("ok") is False, "unknown cmd is an error")

    r, frame = b({"cmd": "reset", "seed": SEED})
    check(r.get("ok") and r["step"] == 0 and not r["done"] and r["frame_bytes"] == SIZE * SIZE * 3, f"reset {r}")
    img = np.frombuffer(frame, np.uint8).reshape(SIZE, SIZE, 3)
    check(img.mean() > 20 and img.std() > 10, f"reset frame is not black (mean {img.mean():.1f})")
    check(np.array_equal(img, ref.frames[0]), "bridge reset frame == generator's first frame (byte-equal)")
    check(np.array_equal(np.float32(r["proprio"]), ref.states[0]), "bridge proprio == observation.state[0]")
    check(
        len(r.get("state", [])) == 39 and np.array_equal(np.float32(r["state"]), ref.env_states[0]),
        "bridge state == observation.environment_state[0]",
    )
    _, frame2 = b({"cmd": "reset", "seed": SEED})
    check(frame2 == frame, "same seed, same frame")
    _, frame3 = b({"cmd": "reset", "seed": 1_000_000})
    check(frame3 != frame, "a different seed gives a different layout")
    b({"cmd": "reset", "seed": SEED})

    frames_equal = True
    t = 0
    while True:
        a, _ = b({"cmd": "expert"})
        if not check(a.get("ok") and len(a["action"]) == 4, f"expert {a}"):
            break
        frames_equal &= np.array_equal(np.float32(a["action"]), ref.actions[t])
        r, frame = b({"cmd": "step", "action": a["action"]})
        t += 1
        if not check(r.get("ok") and r["step"] == t, f"step {t}: {r}"):
            break
        if t < len(ref.frames):
            frames_equal &= frame == ref.frames[t].tobytes()
            frames_equal &= np.array_equal(np.float32(r.get("state", [])), ref.env_states[t])
        if r["done"]:
            break
    check(r.get("success") is True and r.get("truncated") is False, f"expert reaches success through the bridge: {r}")
    check(t <= h["max_episode_steps"], "success within max steps")
    check(t == ref.success_step + 1, f"bridge success after {t} steps = generator's {ref.success_step + 1}")
    check(frames_equal, "bridge frames, states and expert actions == generator's (byte-equal)")
    r, _ = b({"cmd": "step", "action": [0, 0, 0, 0]})
    check(r.get("ok") is False, "step after done is an error")
    r, _ = b({"cmd": "close"})
    check(r == {"ok": True}, "close answers ok")
    check(b.p.wait(timeout=30) == 0, "bridge exits 0 after close")

    # The lossless video decodes to exactly the rendered frames.
    decoded = decode(video)
    check(len(decoded) == len(ref.frames), "decoded frames = rollout frames")
    check(
        len(decoded) == len(ref.frames) and all(np.array_equal(d, f) for d, f in zip(decoded, ref.frames)),
        "lossless video decodes to the rendered frames (byte-equal)",
    )
    env.close()

    # The scene camera corner4, as the Rust tests start the bridge: upright, not black, version 2.
    b = Bridge(camera="corner4")
    check(b.hello.get("camera") == "corner4" and b.hello.get("version") == 2, f"corner4 bridge hello {b.hello}")
    r, frame = b({"cmd": "reset", "seed": SEED})
    img = np.frombuffer(frame, np.uint8).reshape(SIZE, SIZE, 3).astype(int)
    # upright: the bright wall/floor behind the table is at the top, the dark table edge at the bottom
    check(img.mean() > 20 and img[: SIZE // 4].mean() > img[-SIZE // 4 :].mean(), "corner4 frame is upright, not black")
    check(len(r.get("state", [])) == 39, "corner4 bridge sends state")
    b({"cmd": "close"})
    b.p.wait(timeout=30)


def check_lossy(root: Path, lossless_video: Path) -> None:
    """`--codec lossy` still writes the old yuv420p CRF video, close to the lossless frames."""
    out = root / "lossy"
    generate(out, "v2.1", "--codec", "lossy", "--crf", "23", "--episodes", "1")
    info = json.loads((out / "meta/info.json").read_text())
    check(info["features"][VIDEO_KEY]["info"]["video.pix_fmt"] == "yuv420p", "lossy: yuv420p feature")
    check("crf 23" in info["metaworld"]["video_codec"], f"lossy: codec recorded {info['metaworld']['video_codec']}")
    video = out / info["video_path"].format(episode_chunk=0, video_key=VIDEO_KEY, episode_index=0)
    lossy, exact = decode(video), decode(lossless_video)
    mae = np.abs(lossy.astype(int) - exact.astype(int)).mean()
    flipped = np.abs(lossy[0].astype(int) - exact[0][::-1, ::-1].astype(int)).mean()
    ok = len(lossy) == len(exact) and 0 < mae < 6.0 and flipped > 2 * mae
    check(ok, f"lossy video close to the lossless one (MAE {mae:.2f}, flipped {flipped:.1f})")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--keep", help="write the datasets here and keep them")
    args = p.parse_args()
    t0 = time.time()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="test_metaworld."))
    try:
        root.mkdir(parents=True, exist_ok=True)
        for fmt in ("v2.1", "v3.0"):
            out = root / fmt
            if out.exists():
                shutil.rmtree(out)
            generate(out, fmt)
        rows21, episodes = check_v21(root / "v2.1")
        rows30 = check_v30(root / "v3.0")
        check(rows21.equals(rows30), "v2.1 and v3.0 hold the same rows (deterministic generator)")
        video = root / f"v2.1/videos/chunk-000/{VIDEO_KEY}/episode_000000.mp4"
        check_bridge(episodes, video)
        check_lossy(root, video)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    dt = time.time() - t0
    if failures:
        print(f"{len(failures)} check(s) failed in {dt:.0f}s", flush=True)
        return 1
    print(f"all Meta-World checks passed in {dt:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)
