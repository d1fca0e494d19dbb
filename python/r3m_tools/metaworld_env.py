"""One Meta-World v3 task, one layout per integer seed, one fast fixed camera.

Shared by the demonstration generator (`metaworld_demos.py`) and the environment server the Rust
side drives (`metaworld_bridge.py`), so both render exactly the same pixels for the same task,
layout seed, camera, size and action sequence.

Layouts. A layout (object and goal positions) is chosen by an integer *layout seed*, the way
Meta-World's own goal-observable constructor does it (`ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[...]
(seed=S)`): NumPy's global generator is seeded with S, the env draws its random reset vector
once, and that vector is frozen for the episode (the global generator is restored afterwards).
The same seed always gives the same layout; different seeds give different layouts. This is not
`reset(seed=)` (Meta-World ignores that) and not MT1's task list (50 layouts per constructor
seed): any seed in [0, 2**32) is a layout.

Seed ranges (disjoint, so evaluation layouts are never demonstration layouts):
  - demonstrations: seeds in [DEMO_SEED_MIN, EVAL_SEED_MIN) = [0, 1_000_000);
    the generator uses base, base+1, ... (base = `--seed`, default 0), skipping none.
  - evaluation rollouts: seeds >= EVAL_SEED_MIN = 1_000_000.

Observation. Meta-World's 39-d goal-observable observation (hand xyz, gripper opening, object
poses, the previous frame's copy of those, goal xyz); the scripted experts in
`metaworld.policies` need the goal part, so the env is built goal-observable. The policy input
the Rust side sees is `proprio = obs[:4]` (hand xyz + gripper), as in R3M.

Rendering. `mujoco.Renderer` on the env's model with shadows, reflections and multisampling
turned off (`model.vis.quality.offsamples = 0` must be set before the renderer exists): ~40-70
frames/s on llvmpipe instead of ~4. The scene's `corner*` cameras render upside down; their
images are rotated 180 degrees (both axes flipped) so frames come out upright. Never create or
close a second renderer in the same process (closing one can silently blacken the other's frames).

Cameras. Any camera of the scene by name (topview, corner, corner2, corner3, corner4,
behindGripper, gripperPOV), or a *virtual* camera from `VIRTUAL_CAMERAS`: one of the scene's
cameras re-placed through the model (`model.cam_pos`, `cam_quat`, `cam_fovy`, fixed mode), the
way Meta-World's docs and LeRobot's Meta-World envs re-aim `corner2`. The default,
`corner2-close`, looks from the front-right corner, 35 degrees down, at the workspace
(x 0.15, y 0.65, z 0.15) from 1.12 m with a 45-degree lens: the table area where objects,
goals and the expert's hand move (x -0.3..0.5, y 0.36..0.89, z 0..0.45 across all 50 tasks
and layouts) fills the frame with a margin, where `corner4` (60-degree lens aimed past the
workspace, at the table's far-left) shows objects smaller and loses some at the frame's edges.
Its orientation is built upright (camera y axis up), so its images are not flipped.

Episode. `step` clips the action to [-1, 1] (as float32, so every caller feeds the simulator the
same values) and returns Meta-World's reward and `info["success"]`. The raw env never terminates
on success (that is what `terminate_on_success` does in `gym.make`); callers decide: the bridge
ends the episode at the first success, the generator keeps a few frames after it. The step
limit `max_episode_steps` defaults to Meta-World's 500.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import warnings  # noqa: E402

import numpy as np  # noqa: E402

# The scripted experts warn on every step that their gains exceed the action range (the env clips).
warnings.filterwarnings("ignore", message="Constant\\(s\\) may be too high")
warnings.filterwarnings("ignore", category=DeprecationWarning)

import mujoco  # noqa: E402
from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE  # noqa: E402
from metaworld.policies import ENV_POLICY_MAP  # noqa: E402

DEMO_SEED_MIN = 0
EVAL_SEED_MIN = 1_000_000
SEED_MAX = 2**32  # exclusive: NumPy's legacy seeding range

DEFAULT_CAMERA = "corner2-close"
DEFAULT_SIZE = 224
DEFAULT_MAX_EPISODE_STEPS = 500  # Meta-World's own horizon (SawyerXYZEnv.max_path_length)
ACTION_DIM = 4
PROPRIO_DIM = 4
PROPRIO_NAMES = ["hand_x", "hand_y", "hand_z", "gripper"]
ACTION_NAMES = ["delta_x", "delta_y", "delta_z", "grip_effort"]

# Cameras whose images MuJoCo renders upside down in Meta-World's scene.
FLIPPED_CAMERAS = {"corner", "corner2", "corner3", "corner4"}

# Full observation (`MetaWorldTask.state()`): Meta-World's 39-d goal-observable observation:
# [0:3] hand xyz, [3] gripper opening (0..1), [4:7] object 1 position, [7:11] object 1
# quaternion, [11:14] object 2 position, [14:18] object 2 quaternion (zeros where a task has no
# such object or reports no orientation), [18:36] the previous step's copy of [0:18], [36:39]
# goal xyz. The quaternion order is the task's own: MuJoCo's (w, x, y, z) for tasks reading
# `xquat`, SciPy's (x, y, z, w) for tasks using `Rotation.as_quat()`, hence the neutral q0..q3.
STATE_DIM = 39
_POSE = ["x", "y", "z", "q0", "q1", "q2", "q3"]
_CURR = ["hand_x", "hand_y", "hand_z", "gripper"] + [f"obj1_{c}" for c in _POSE] + [f"obj2_{c}" for c in _POSE]
STATE_NAMES = _CURR + [f"prev_{n}" for n in _CURR] + ["goal_x", "goal_y", "goal_z"]
assert len(STATE_NAMES) == STATE_DIM


def _lookat_quat(pos, target) -> list[float]:
    """Quaternion (w, x, y, z) of an upright camera at `pos` looking at `target` (MuJoCo cameras
    look along their -z axis with y up)."""
    pos, target = np.asarray(pos, dtype=np.float64), np.asarray(target, dtype=np.float64)
    fwd = target - pos
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    mat = np.stack([right, up, -fwd], axis=1)  # columns: camera x, y, z in world coordinates
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, mat.reshape(-1))
    return quat.tolist()


def _spherical(target, azimuth_deg: float, elevation_deg: float, distance: float) -> list[float]:
    az, el = np.radians(azimuth_deg), np.radians(elevation_deg)
    d = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    return (np.asarray(target, dtype=np.float64) + distance * d).round(4).tolist()


# Virtual cameras: a scene camera (`base`) re-placed through the model before rendering. `pos`,
# `quat` (w, x, y, z) and `fovy` (degrees) replace the base camera's; `flip` says whether its
# images come out upside down (then they are rotated 180 degrees like the corner cameras').
#
# corner2-close: from the front-right corner (azimuth -25 degrees from +x, 35 degrees down),
# 1.12 m from (0.15, 0.65, 0.15), 45-degree lens. Chosen by projecting the hand, object and goal
# positions of expert episodes of all 50 tasks (layout seeds 0-2 and 1_000_000-1_000_001) for
# the largest image of the workspace centre under: every object/goal centre within the middle
# 85% (eval tasks) / 92% (others) of the frame, every hand position within the middle 70% / 80%
# (the gripper's body extends ~10 cm around that point). Binding: sweep's goal off the right
# table edge, door-open's handle swinging left, the hand raised in lever-pull / window-open.
# Workspace centre ~1.23x larger (linear) than in corner4, which also loses some of those.
_CLOSE_TARGET = [0.15, 0.65, 0.15]
_CLOSE_POS = _spherical(_CLOSE_TARGET, azimuth_deg=-25.0, elevation_deg=35.0, distance=1.12)
VIRTUAL_CAMERAS = {
    "corner2-close": {
        "base": "corner2",
        "pos": _CLOSE_POS,  # [0.9815, 0.2623, 0.7924]
        "quat": _lookat_quat(_CLOSE_POS, _CLOSE_TARGET),
        "fovy": 45.0,
        "flip": False,
    },
}


def camera_names() -> list[str]:
    """Camera names `MetaWorldTask` accepts: the virtual ones, then the scene's own."""
    return list(VIRTUAL_CAMERAS) + ["topview", "corner", "corner2", "corner3", "corner4", "behindGripper", "gripperPOV"]


# Natural-language instruction per task (stored as the LeRobot task string).
TASK_DESCRIPTIONS = {
    "assembly-v3": "put the ring on the peg",
    "basketball-v3": "dunk the ball into the basket",
    "bin-picking-v3": "move the puck from one bin to the other",
    "box-close-v3": "close the box with its lid",
    "button-press-topdown-v3": "press the button from the top",
    "button-press-topdown-wall-v3": "press the button from the top behind the wall",
    "button-press-v3": "press the button",
    "button-press-wall-v3": "press the button behind the wall",
    "coffee-button-v3": "press the button on the coffee machine",
    "coffee-pull-v3": "pull the mug from the coffee machine",
    "coffee-push-v3": "push the mug under the coffee machine",
    "dial-turn-v3": "turn the dial",
    "disassemble-v3": "take the ring off the peg",
    "door-close-v3": "close the door",
    "door-lock-v3": "lock the door",
    "door-open-v3": "open the door",
    "door-unlock-v3": "unlock the door",
    "drawer-close-v3": "close the drawer",
    "drawer-open-v3": "open the drawer",
    "faucet-close-v3": "turn the faucet off",
    "faucet-open-v3": "turn the faucet on",
    "hammer-v3": "hammer the nail into the wall",
    "hand-insert-v3": "insert the gripper into the hole",
    "handle-press-side-v3": "press the handle down from the side",
    "handle-press-v3": "press the handle down",
    "handle-pull-side-v3": "pull the handle up from the side",
    "handle-pull-v3": "pull the handle up",
    "lever-pull-v3": "pull the lever up",
    "peg-insert-side-v3": "insert the peg into the hole from the side",
    "peg-unplug-side-v3": "unplug the peg from the side",
    "pick-out-of-hole-v3": "pick the puck out of the hole",
    "pick-place-v3": "pick up the puck and place it at the goal",
    "pick-place-wall-v3": "pick up the puck and place it at the goal behind the wall",
    "plate-slide-back-side-v3": "slide the plate back into the cabinet from the side",
    "plate-slide-back-v3": "slide the plate back into the cabinet",
    "plate-slide-side-v3": "slide the plate into the cabinet from the side",
    "plate-slide-v3": "slide the plate into the cabinet",
    "push-back-v3": "push the puck back to the goal",
    "push-v3": "push the puck to the goal",
    "push-wall-v3": "push the puck to the goal behind the wall",
    "reach-v3": "reach the goal position",
    "reach-wall-v3": "reach the goal position behind the wall",
    "shelf-place-v3": "place the puck on the shelf",
    "soccer-v3": "kick the ball into the goal",
    "stick-pull-v3": "pull the thermos with the stick",
    "stick-push-v3": "push the thermos with the stick",
    "sweep-into-v3": "sweep the puck into the hole",
    "sweep-v3": "sweep the puck off the table",
    "window-close-v3": "close the window",
    "window-open-v3": "open the window",
}


def task_names() -> list[str]:
    """All Meta-World v3 task names that have a scripted expert."""
    return sorted(name for name in ENV_POLICY_MAP if f"{name}-goal-observable" in ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE)


def task_description(task: str) -> str:
    return TASK_DESCRIPTIONS.get(task, task)


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"layout seed must be an integer, got {seed!r}")
    seed = int(seed)
    if not 0 <= seed < SEED_MAX:
        raise ValueError(f"layout seed must be in [0, 2**32), got {seed}")
    return seed


class MetaWorldTask:
    """One goal-observable Meta-World v3 env for `task`, with its scripted expert and a camera.

    `size` is the square image side (or pass `width`/`height`); `camera=None` (or `render=False`)
    builds no renderer at all (for state-only work such as the expert survey).
    """

    def __init__(
        self,
        task: str,
        camera: str | None = DEFAULT_CAMERA,
        size: int = DEFAULT_SIZE,
        max_episode_steps: int = DEFAULT_MAX_EPISODE_STEPS,
        width: int | None = None,
        height: int | None = None,
        render: bool = True,
    ):
        key = f"{task}-goal-observable"
        if key not in ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE or task not in ENV_POLICY_MAP:
            raise ValueError(f"unknown Meta-World v3 task {task!r} (known: {', '.join(task_names())})")
        if max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        self.task = task
        self.description = task_description(task)
        self.max_episode_steps = int(max_episode_steps)
        self.width = int(width or size)
        self.height = int(height or size)
        if self.width < 1 or self.height < 1:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")
        # Seed 0 only makes construction deterministic; every reset picks its own layout.
        self.env = ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[key](seed=0)
        # The env refuses to step past its own horizon; lift it when asked for longer episodes.
        self.env.max_path_length = max(self.env.max_path_length, self.max_episode_steps)
        self.policy = ENV_POLICY_MAP[task]()
        self.camera = camera if render else None
        self.renderer = None
        if self.camera is not None:
            model = self.env.model
            names = [model.camera(i).name for i in range(model.ncam)]
            virtual = VIRTUAL_CAMERAS.get(self.camera)
            self._scene_camera = virtual["base"] if virtual else self.camera
            if self._scene_camera not in names:
                known = ", ".join(list(VIRTUAL_CAMERAS) + names)
                raise ValueError(f"unknown camera {self.camera!r} (known: {known})")
            if virtual:
                cam = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, virtual["base"])
                model.cam_mode[cam] = mujoco.mjtCamLight.mjCAMLIGHT_FIXED
                model.cam_pos[cam] = virtual["pos"]
                model.cam_quat[cam] = virtual["quat"]
                model.cam_fovy[cam] = virtual["fovy"]
            # Fast visuals; offsamples must be set before the renderer (its GL context) exists.
            model.vis.quality.offsamples = 0
            model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
            model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
            self.renderer = mujoco.Renderer(model, height=self.height, width=self.width)
            flags = self.renderer.scene.flags
            flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
            flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
            self._flip = virtual["flip"] if virtual else self.camera in FLIPPED_CAMERAS
        self.seed: int | None = None
        self.obs: np.ndarray | None = None
        self.steps = 0
        self.success = False

    # -- episode ---------------------------------------------------------------------------------

    def reset(self, seed: int) -> np.ndarray:
        """Start an episode on the layout of `seed`; returns the 39-d observation."""
        seed = check_seed(seed)
        env = self.env
        state = np.random.get_state()
        try:
            np.random.seed(seed)
            env._freeze_rand_vec = False
            env.reset()  # draws the layout's random vector from the seeded global generator
        finally:
            env._freeze_rand_vec = True
            np.random.set_state(state)
        obs, _ = env.reset()  # the episode itself starts from a reset with the layout frozen
        self.seed = seed
        self.obs = obs
        self.steps = 0
        self.success = False
        return obs

    def step(self, action) -> tuple[np.ndarray, float, bool]:
        """Apply `action` (clipped to [-1, 1]); returns (obs, reward, success of this step).

        Stepping on after a success is allowed (the generator keeps a few frames after it);
        stepping past `max_episode_steps` is not. Ending episodes on success is the caller's job.
        """
        if self.obs is None:
            raise RuntimeError("step before reset")
        if self.steps >= self.max_episode_steps:
            raise RuntimeError(f"episode reached its step limit ({self.max_episode_steps}); reset first")
        action = clip_action(action)
        obs, reward, _, _, info = self.env.step(action)
        self.obs = obs
        self.steps += 1
        success = bool(info["success"])
        self.success = self.success or success
        return obs, float(reward), success

    def proprio(self) -> np.ndarray:
        """Hand xyz + gripper opening (the observation's first 4 entries) as float32."""
        return np.asarray(self.obs[:PROPRIO_DIM], dtype=np.float32)

    def state(self) -> np.ndarray:
        """The full 39-d observation (what the expert sees; names in STATE_NAMES) as float32."""
        if self.obs is None:
            raise RuntimeError("state before reset")
        return np.asarray(self.obs, dtype=np.float32).reshape(STATE_DIM)

    def expert_action(self) -> np.ndarray:
        """The scripted expert's action for the current observation, clipped, float32."""
        if self.obs is None:
            raise RuntimeError("expert before reset")
        return clip_action(self.policy.get_action(self.obs))

    # -- camera ----------------------------------------------------------------------------------

    def render(self) -> np.ndarray:
        """The camera image of the current state: uint8 (height, width, 3), upright, contiguous."""
        if self.renderer is None:
            raise RuntimeError("this env was built without a camera")
        self.renderer.update_scene(self.env.data, camera=self._scene_camera)
        img = self.renderer.render()
        if self._flip:
            img = img[::-1, ::-1]
        return np.ascontiguousarray(img)

    def close(self) -> None:
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None
        # env.close() is skipped on purpose: it tears down gymnasium's renderer machinery, which
        # can disturb other GL contexts in this process; the process exit frees everything.


def clip_action(action) -> np.ndarray:
    a = np.asarray(action, dtype=np.float32).reshape(-1)
    if a.shape != (ACTION_DIM,):
        raise ValueError(f"action must have {ACTION_DIM} values, got {a.size}")
    if not np.all(np.isfinite(a)):
        raise ValueError("action contains NaN or infinity")
    return np.clip(a, -1.0, 1.0).astype(np.float32)
