#!/usr/bin/env python3
"""Environment server: ONE Meta-World v3 env, driven by a client over stdin/stdout.

Start:
    MUJOCO_GL=egl python python/r3m_tools/metaworld_bridge.py --task drawer-open-v3 --camera corner2-close \
        --size 128 --max-episode-steps 500

`--camera` is any camera `metaworld_env.py` knows (default `corner2-close`, its DEFAULT_CAMERA;
the scene's own corner, corner2, corner3, corner4, topview, ... still work).

Protocol (version 2: version 1 plus "state" in reset/step responses). Requests are one line of
JSON each on stdin. Every request gets exactly one response line of JSON on stdout; when that
line has `"frame_bytes": n` with n > 0, exactly n raw bytes follow it: the camera image, RGB u8,
height x width x 3, row-major, upright (the same pixels `metaworld_demos.py` writes into its
videos for the same task, layout seed, camera, size and actions; its default lossless videos
decode to exactly these bytes). Nothing else is ever written to stdout (library output is sent
to stderr), and stdout is flushed after every response.

  on start (before any request):
    {"ok":true,"hello":"r3m-metaworld-bridge","version":2,"task":"drawer-open-v3",
     "camera":"corner2-close","width":W,"height":H,"action_dim":4,"proprio_dim":4,"state_dim":39,
     "max_episode_steps":500}

  {"cmd":"reset","seed":S}
    Start an episode on the layout of integer seed S in [0, 2**32) (deterministic: the same S
    always gives the same layout; demonstration seeds are < 1_000_000, evaluation seeds should be
    >= 1_000_000). ->
    {"ok":true,"proprio":[4 floats],"state":[39 floats],"step":0,"reward":0.0,"success":false,
     "done":false,"truncated":false,"frame_bytes":W*H*3} + frame

  {"cmd":"step","action":[4 numbers]}
    Apply the action, clipped to [-1, 1] (dx, dy, dz of the hand, gripper effort). ->
    {"ok":true,"proprio":[...],"state":[...],"reward":r,"success":bool,"done":bool,
     "truncated":bool,"step":t,"frame_bytes":W*H*3} + frame
    `step` is the number of steps taken so far (1 after the first). `done` is true when this step
    reached success or the step count reached max_episode_steps; `truncated` is true when the
    step limit ended the episode without success. After `done`, steps are refused until `reset`.

  {"cmd":"expert"}
    -> {"ok":true,"action":[4 floats]}   the scripted expert's action (clipped) for the current
    state; no frame, the state does not change.

  {"cmd":"step_expert"}
    Convenience: `expert` then `step` with that action; the step response plus "action".

  Both `reset` and the step commands accept "render":false to skip the image (then
  "frame_bytes":0 and no bytes follow).

  {"cmd":"close"} -> {"ok":true}, then the server exits with status 0. End of stdin: exit 0.

  Anything else (bad JSON, unknown command, missing or wrong-typed field, step before reset or
  after done) -> {"ok":false,"error":"..."} with no frame, and the server keeps serving.

Floats are written with Python's shortest round-trip repr; proprio is the float32 hand xyz +
gripper opening (observation[:4]) widened to double for JSON; state (protocol version 2) is the
env's full 39-d observation, float32 widened to double (the `observation.environment_state` the
generator records: [0:3] hand xyz, [3] gripper, [4:7] object 1 position, [7:11] its quaternion,
[11:14] object 2 position, [14:18] its quaternion, [18:36] the previous step's [0:18], [36:39]
goal xyz; names in metaworld_env.STATE_NAMES). proprio == state[:4].

Changes from version 1: "state" in reset/step/step_expert responses, "state_dim" in the hello,
the default camera (corner4 before). Clients that ignore unknown fields work unchanged.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

# Keep the protocol channel private: fd 1 becomes stderr for everything else (Python prints,
# C libraries writing to stdout), and only `_out` writes to the real stdout.
_out = os.fdopen(os.dup(1), "wb", buffering=0)
os.dup2(2, 1)
sys.stdout = sys.stderr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

PROTOCOL_VERSION = 2


def send(obj: dict, frame: bytes | None = None) -> None:
    line = json.dumps(obj, separators=(",", ":"), allow_nan=False).encode() + b"\n"
    _out.write(line + frame if frame else line)


class BadRequest(Exception):
    pass


def floats(values) -> list[float]:
    return [float(v) for v in values]


class Server:
    def __init__(self, env):
        self.env = env
        self.frame_bytes = env.width * env.height * 3
        self.started = False
        self.done = False

    def hello(self) -> dict:
        e = self.env
        return {
            "ok": True,
            "hello": "r3m-metaworld-bridge",
            "version": PROTOCOL_VERSION,
            "task": e.task,
            "camera": e.camera,
            "width": e.width,
            "height": e.height,
            "action_dim": 4,
            "proprio_dim": 4,
            "state_dim": 39,
            "max_episode_steps": e.max_episode_steps,
        }

    def _frame(self, req: dict) -> bytes | None:
        render = req.get("render", True)
        if not isinstance(render, bool):
            raise BadRequest('"render" must be true or false')
        if not render:
            return None
        frame = self.env.render().tobytes()
        assert len(frame) == self.frame_bytes
        return frame

    def reset(self, req: dict):
        seed = req.get("seed")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise BadRequest('reset needs an integer "seed"')
        if not 0 <= seed < 2**32:
            raise BadRequest(f"seed must be in [0, 2**32), got {seed}")
        self.env.reset(seed)
        self.started, self.done = True, False
        frame = self._frame(req)
        resp = {
            "ok": True,
            "proprio": floats(self.env.proprio()),
            "state": floats(self.env.state()),
            "step": 0,
            "reward": 0.0,
            "success": False,
            "done": False,
            "truncated": False,
            "frame_bytes": len(frame) if frame else 0,
        }
        return resp, frame

    def _check_steppable(self):
        if not self.started:
            raise BadRequest("step before reset")
        if self.done:
            raise BadRequest("episode is done (success or step limit); send reset")

    def step(self, req: dict, action=None):
        self._check_steppable()
        if action is None:
            action = req.get("action")
            if not isinstance(action, list) or len(action) != 4:
                raise BadRequest('step needs "action": a list of 4 numbers')
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in action):
                raise BadRequest('"action" must hold 4 finite numbers')
        _, reward, success = self.env.step(action)
        truncated = (not success) and self.env.steps >= self.env.max_episode_steps
        self.done = success or truncated
        frame = self._frame(req)
        resp = {
            "ok": True,
            "proprio": floats(self.env.proprio()),
            "state": floats(self.env.state()),
            "reward": float(reward),
            "success": bool(success),
            "done": self.done,
            "truncated": truncated,
            "step": self.env.steps,
            "frame_bytes": len(frame) if frame else 0,
        }
        return resp, frame

    def expert(self, req: dict):
        if not self.started:
            raise BadRequest("expert before reset")
        return {"ok": True, "action": floats(self.env.expert_action())}, None

    def step_expert(self, req: dict):
        self._check_steppable()
        action = self.env.expert_action()
        resp, frame = self.step(req, action)
        resp["action"] = floats(action)
        return resp, frame

    def handle(self, line: bytes):
        try:
            req = json.loads(line)
        except (ValueError, UnicodeDecodeError) as e:
            raise BadRequest(f"request is not valid JSON: {e}") from None
        if not isinstance(req, dict):
            raise BadRequest("request must be a JSON object")
        cmd = req.get("cmd")
        if cmd == "close":
            return None, None
        handler = {"reset": self.reset, "step": self.step, "expert": self.expert, "step_expert": self.step_expert}.get(
            cmd
        )
        if handler is None:
            raise BadRequest(f"unknown cmd {cmd!r} (reset, step, expert, step_expert, close)")
        return handler(req)


def main() -> int:
    p = argparse.ArgumentParser(description="Meta-World environment server (JSON lines on stdin/stdout).")
    p.add_argument("--task", required=True)
    p.add_argument("--camera", default=None, help="camera name (default: metaworld_env.DEFAULT_CAMERA, corner2-close)")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--max-episode-steps", type=int, default=500)
    args = p.parse_args()

    import metaworld_env as mwe

    if args.camera is None:
        args.camera = mwe.DEFAULT_CAMERA

    try:
        env = mwe.MetaWorldTask(args.task, camera=args.camera, size=args.size, max_episode_steps=args.max_episode_steps)
    except Exception as e:
        send({"ok": False, "error": f"cannot start: {e}"})
        return 1
    server = Server(env)
    send(server.hello())
    stdin = sys.stdin.buffer
    while True:
        line = stdin.readline()
        if not line:
            return 0
        if not line.strip():
            send({"ok": False, "error": "empty request line"})
            continue
        try:
            resp, frame = server.handle(line)
            if resp is None:  # close
                send({"ok": True})
                return 0
        except BadRequest as e:
            send({"ok": False, "error": str(e)})
            continue
        except Exception as e:  # the env itself failed: report it, keep serving
            send({"ok": False, "error": f"{type(e).__name__}: {e}"})
            continue
        send(resp, frame)


if __name__ == "__main__":
    try:
        code = main()
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        code = 0
    sys.stderr.flush()
    # Skip interpreter teardown: MuJoCo/EGL objects destroyed at exit raise noisy EGL errors.
    os._exit(code)
