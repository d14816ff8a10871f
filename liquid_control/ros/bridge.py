"""Simulation side of ``sim_bridge``, importable and testable without ROS.

:class:`SimSession` owns a Gymnasium env (any registered id, perturbations
applied), the simulated clock, the last valid command and the episode
bookkeeping. The node only turns messages into :meth:`SimSession.command`
calls and :class:`Frame` results into messages.

Commands arrive as a Twist-like (linear x/y/z, angular z) and are mapped to the
env's action by ``command_mode``:

- ``curvature`` (lane keeping): curvature = angular.z / linear.x (1/m), i.e. the
  Twist carries the speed in ``linear.x`` and the yaw rate in ``angular.z`` =
  curvature * speed. A command with ``|linear.x| < 0.1`` m/s means curvature 0.
- ``velocity`` (drone): [linear.x, linear.y, linear.z, angular.z].
- ``vector``: the raw action vector (``std_msgs/Float64MultiArray``, Walker2d).

A command that is non-finite, of the wrong length or outside the action space
is rejected and counted; the session then holds the safe command (zero action).

A session runs for hours: what it remembers about past steps and episodes is running
totals (:class:`RunningTotals`) and the last few episode summaries, never a per-step list.
"""

from __future__ import annotations

import collections
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from liquid_control.errors import UserError
from liquid_control.ros.params import Param

COMMAND_MODES = ("curvature", "velocity", "vector")  # what a command means, for both nodes
MIN_SPEED_MPS = 0.1
# Sim time jumps this much at every reset, so a policy node's gap rule resets its state.
RESET_GAP_S = 1.0

NAME = "sim_bridge"
PARAMS = [
    Param("env_id", "LiquidControl/LaneKeeping-v1", "Gymnasium env id", read_only=True),
    Param("env_kwargs", "{}", "JSON object of env keyword arguments", read_only=True),
    Param(
        "perturb",
        "",
        "perturbations, e.g. 'noise=0.2,drop=0.5' (empty: clean); at runtime the strengths "
        "of the kinds set at start-up can change",
    ),
    Param(
        "mode",
        "sync",
        "sync: one step per command answering the last frame; realtime: step on a timer",
        choices=("sync", "realtime"),
        read_only=True,
    ),
    Param("rate_hz", 20.0, "realtime step rate (Hz)", 0.1, 1000.0, read_only=True),
    Param(
        "sync_timeout_s",
        1.0,
        "sync mode: step with the fail-safe command after this wait for an answer",
        0.01,
        60.0,
    ),
    Param(
        "command_mode",
        "curvature",
        "how a command maps to the env action",
        choices=COMMAND_MODES,
        read_only=True,
    ),
    Param(
        "seed",
        0,
        "seed of the first episode (episode k uses seed + k)",
        0,
        2**31 - 1,
        read_only=True,
    ),
    Param("camera_topic", "camera/image_raw", "camera image topic", read_only=True),
    Param(
        "observation_topic",
        "observation",
        "vector observation topic (sensor_msgs/JointState, position = observation)",
        read_only=True,
    ),
    Param("command_topic", "cmd_vel", "command topic", read_only=True),
    Param(
        "render_camera",
        False,
        "envs without a camera observation (Walker2d): publish env.render() on camera_topic "
        "(needs env_kwargs render_mode rgb_array)",
        read_only=True,
    ),
    Param("frame_id", "camera", "frame of the camera images", read_only=True),
    Param("diagnostics_period_s", 1.0, "period of /diagnostics messages (s)", 0.05, 60.0),
    Param(
        "publish_compressed",
        False,
        "also publish every camera frame as jpeg (sensor_msgs/CompressedImage) on "
        "<camera_topic>/compressed, as image_transport's compressed plugin does",
        read_only=True,
    ),
    Param(
        "autopilot",
        "",
        "expert: the privileged expert drives (commands are ignored) and its command is "
        "published on <command_topic>_autopilot, for recording demonstrations",
        choices=("", "expert"),
        read_only=True,
    ),
    Param(
        "max_episodes",
        0,
        "shut down after this many episodes (0: never)",
        0,
        1_000_000,
        read_only=True,
    ),
]


class CommandError(ValueError):
    """A command that cannot be applied."""


@dataclass
class Frame:
    """What one simulation step produced, ready to publish."""

    sim_time_s: float
    observation: Any
    info: dict[str, Any]
    reward: float = 0.0
    events: list[dict[str, Any]] = field(default_factory=list)
    command: np.ndarray | None = None  # the autopilot's action that produced this frame
    command_time_s: float = 0.0  # stamp of the frame that action responded to

    @property
    def image(self) -> np.ndarray | None:
        if isinstance(self.observation, dict) and "image" in self.observation:
            return self.observation["image"]
        return None

    @property
    def vector(self) -> np.ndarray | None:
        if isinstance(self.observation, dict):
            return None
        return np.asarray(self.observation, dtype=np.float64).reshape(-1)


def make_env(env_id: str, env_kwargs: str | dict[str, Any] = "", perturb: str = "") -> Any:
    """A Gymnasium env by id (project envs registered), with kwargs (JSON) and perturbations."""
    import gymnasium as gym

    import liquid_control.envs  # noqa: F401  (registers LiquidControl/* ids)

    if isinstance(env_kwargs, dict):
        kwargs = env_kwargs
    else:
        try:
            kwargs = json.loads(env_kwargs or "{}")
        except ValueError as e:
            raise UserError(f"env_kwargs is not a JSON object: {e}") from None
        if not isinstance(kwargs, dict):
            raise UserError(f"env_kwargs must be a JSON object, got {env_kwargs!r}")
    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.Error as e:
        raise UserError(f"cannot make env {env_id!r}: {e}") from None
    except (TypeError, ValueError) as e:  # unknown keyword, or a value the env refuses
        raise UserError(f"bad env_kwargs for {env_id!r}: {e}") from None
    if perturb:
        from liquid_control.envs.perturb import make_perturbed

        env = make_perturbed(env, perturb)
    return env


OFFSET_BIN_M = 0.001  # resolution of the |lateral offset| percentiles
OFFSET_BINS = 10_000  # up to 10 m; a lane departure ends an episode well before


@dataclass
class RunningTotals:
    """Everything a run reports about its past steps and episodes, in constant memory."""

    episodes: int = 0
    km_finished: float = 0.0
    lane_departures: int = 0
    falls: int = 0  # terminated without a task outcome (a drone's carry one)
    return_sum: float = 0.0
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    offset_steps: int = 0
    offset_sum_m: float = 0.0
    offset_histogram: np.ndarray = field(default_factory=lambda: np.zeros(OFFSET_BINS, np.int64))

    def add_offset(self, offset_m: float) -> None:
        offset = abs(offset_m)
        self.offset_steps += 1
        self.offset_sum_m += offset
        self.offset_histogram[min(int(offset / OFFSET_BIN_M), OFFSET_BINS - 1)] += 1

    def add_episode(self, summary: dict[str, Any]) -> None:
        self.episodes += 1
        self.km_finished += float(summary.get("progress_m", 0.0)) / 1000.0
        self.lane_departures += summary["event"] == "lane_departure"
        self.falls += summary["event"] == "terminated" and not summary.get("outcome")
        self.return_sum += float(summary["return"])
        if summary.get("outcome"):
            self.outcomes[summary["outcome"]] += 1

    def mean_abs_offset_m(self) -> float | None:
        return self.offset_sum_m / self.offset_steps if self.offset_steps else None

    def abs_offset_percentile_m(self, q: float) -> float | None:
        """The ``q``-th percentile of |lateral offset|, to :data:`OFFSET_BIN_M`."""
        if not self.offset_steps:
            return None
        rank = np.searchsorted(np.cumsum(self.offset_histogram), q / 100.0 * self.offset_steps)
        return float((rank + 0.5) * OFFSET_BIN_M)

    def mean_return(self) -> float | None:
        return self.return_sum / self.episodes if self.episodes else None


class SimSession:
    """One env in closed loop: commands in, frames out, with sim time and episode events."""

    def __init__(self, env: Any, command_mode: str, seed: int = 0, autopilot: Any = None) -> None:
        """``autopilot``: an expert with ``act(env) -> (executed, label)`` that drives instead
        of incoming commands (demonstrations over ROS); its command is in ``Frame.command``."""
        self.autopilot = autopilot
        if command_mode not in COMMAND_MODES:
            raise ValueError(f"unknown command mode {command_mode!r}")
        self.env = env
        self.command_mode = command_mode
        self.seed = seed
        space = env.action_space
        self.action_low = np.asarray(space.low, dtype=np.float64).reshape(-1)
        self.action_high = np.asarray(space.high, dtype=np.float64).reshape(-1)
        self.safe_action = np.clip(
            np.zeros_like(self.action_low), self.action_low, self.action_high
        )
        self.fail_safe()
        self.sim_time_s = 0.0
        self.episode = -1
        self.episode_return = 0.0
        self.rejected = 0
        self.steps = 0
        self.stepped_s = 0.0  # sim time advanced by steps (resets' jumps left out)
        self.totals = RunningTotals()
        self.recent_episodes: collections.deque[dict[str, Any]] = collections.deque(maxlen=100)
        self.on_frame: Any = None  # optional hook called with every stepped Frame

    def reset(self, reason: str = "reset") -> Frame:
        if self.episode >= 0:
            self.sim_time_s += RESET_GAP_S
        self.episode += 1
        obs, info = self.env.reset(seed=self.seed + self.episode)
        self.action = self.safe_action.copy()
        self.episode_return = 0.0
        event = {"event": reason, "episode": self.episode, "sim_time_s": self.sim_time_s}
        return Frame(self.sim_time_s, obs, info, events=[event])

    def fail_safe(self) -> None:
        """Hold the safe command (zero action): what a step without an answer gets."""
        self.action = self.safe_action.copy()

    def to_action(self, values: list[float]) -> np.ndarray:
        """Map a command (Twist fields or a raw vector) to an env action, or raise."""
        v = np.asarray(values, dtype=np.float64).reshape(-1)
        if not np.all(np.isfinite(v)):
            raise CommandError(f"non-finite command {v.tolist()}")
        if self.command_mode == "curvature":
            speed, yaw_rate = v[0], v[3]
            action = np.array([0.0 if abs(speed) < MIN_SPEED_MPS else yaw_rate / speed])
        elif self.command_mode == "velocity":
            action = v[:4]
        else:
            action = v
        if action.shape != self.action_low.shape:
            raise CommandError(
                f"command has {action.size} values, the action space needs {self.action_low.size}"
            )
        tolerance = 1e-6 * np.maximum(1.0, np.abs(self.action_high - self.action_low))
        if np.any(action < self.action_low - tolerance) or np.any(
            action > self.action_high + tolerance
        ):
            raise CommandError(
                f"command {action.tolist()} outside [{self.action_low.tolist()}, "
                f"{self.action_high.tolist()}]"
            )
        return np.clip(action, self.action_low, self.action_high)

    def command(self, values: list[float]) -> str | None:
        """Take a command; on rejection hold the safe action and return why."""
        try:
            self.action = self.to_action(values)
        except CommandError as e:
            self.rejected += 1
            self.fail_safe()
            return str(e)
        return None

    def step(self) -> Frame:
        """Advance one env step with the held action; resets after an episode ends."""
        command, command_time_s = None, self.sim_time_s
        if self.autopilot is not None:
            if getattr(self.env.unwrapped, "steps", 1) == 0:
                self.autopilot.reset(seed=self.seed + self.episode)
            command, _ = self.autopilot.act(self.env)
            self.action = np.asarray(command, dtype=np.float64).reshape(-1)
        obs, reward, terminated, truncated, info = self.env.step(self.action.astype(np.float32))
        self.steps += 1
        dt = _frame_dt(obs, self.env)
        self.sim_time_s += dt
        self.stepped_s += dt
        self.episode_return += float(reward)
        frame = Frame(
            self.sim_time_s,
            obs,
            info,
            float(reward),
            command=command,
            command_time_s=command_time_s,
        )
        if "lateral_offset_m" in info:
            self.totals.add_offset(float(info["lateral_offset_m"]))
        if self.on_frame is not None:
            self.on_frame(frame)
        if terminated or truncated:
            summary = {
                "event": "terminated" if terminated else "truncated",
                "episode": self.episode,
                "sim_time_s": self.sim_time_s,
                "return": self.episode_return,
                **{k: _jsonable(v) for k, v in info.items()},
            }
            if "lateral_offset_m" in info and terminated:
                summary["event"] = "lane_departure"
            self.totals.add_episode(summary)
            self.recent_episodes.append(summary)
            reset = self.reset("reset")
            reset.events.insert(0, summary)
            return reset
        return frame


def _frame_dt(obs: Any, env: Any) -> float:
    if isinstance(obs, dict) and "dt" in obs:
        return float(np.asarray(obs["dt"]).reshape(-1)[0])
    return float(getattr(env.unwrapped, "dt", 0.05))


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.size <= 16:
        return [_jsonable(v) for v in value.reshape(-1).tolist()]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


class AnswerTimes:
    """How long the policy takes to answer each published frame, as the bridge sees it.

    A command stamped like a frame answers that frame; the time from publishing the frame
    to receiving its answer covers transport both ways and inference. An answer later
    than ``late_after_s`` (one period in realtime mode) is counted late; memory is bounded.
    """

    def __init__(self, late_after_s: float | None, keep: int = 64) -> None:
        self.late_after_s = late_after_s
        self.keep = keep
        self.sent: collections.OrderedDict[int, float] = collections.OrderedDict()
        self.frames = 0
        self.answered = 0
        self.late = 0
        self.delays_s: collections.deque[float] = collections.deque(maxlen=10_000)

    def frame_sent(self, stamp_ns: int, now_s: float) -> None:
        self.frames += 1
        self.sent[stamp_ns] = now_s
        while len(self.sent) > self.keep:
            self.sent.popitem(last=False)

    def answer(self, stamp_ns: int, now_s: float) -> None:
        sent = self.sent.pop(stamp_ns, None)
        if sent is None:
            return  # not a frame of ours, or answered already
        delay = now_s - sent
        self.answered += 1
        self.delays_s.append(delay)
        if self.late_after_s is not None and delay > self.late_after_s:
            self.late += 1

    def summary(self) -> dict[str, float | int | None]:
        delays = np.asarray(self.delays_s) * 1e3
        return {
            "frames": self.frames,
            "answered": self.answered,
            "late": self.late,
            "late_after_ms": None if self.late_after_s is None else self.late_after_s * 1e3,
            "answer_p50_ms": float(np.percentile(delays, 50)) if delays.size else None,
            "answer_p99_ms": float(np.percentile(delays, 99)) if delays.size else None,
            "answer_max_ms": float(delays.max()) if delays.size else None,
        }


def mujoco_joints(env: Any) -> list[tuple[str, int, int]]:
    """(name, qpos index, qvel index) of every hinge/slide joint of a MuJoCo env ([] if none)."""
    model = getattr(env.unwrapped, "model", None)
    if model is None or not hasattr(model, "njnt"):
        return []
    import mujoco

    one_dof = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
    return [
        (model.joint(j).name, int(model.jnt_qposadr[j]), int(model.jnt_dofadr[j]))
        for j in range(model.njnt)
        if int(model.jnt_type[j]) in one_dof
    ]


def expert_for(env: Any) -> Any:
    """The privileged expert of the env's task (lane keeping or drone navigation)."""
    from liquid_control.envs.drone import DroneNavEnv

    if isinstance(env.unwrapped, DroneNavEnv):
        from liquid_control.experts.drone import DroneExpert

        return DroneExpert()
    from liquid_control.experts.lane import LaneExpert

    return LaneExpert()


def world_to_body(q: Any, v: Any) -> tuple[float, float, float]:
    """Rotate a world-frame vector into the frame of unit quaternion ``q`` (nav_msgs/Odometry
    gives the twist in ``child_frame_id``)."""
    import mujoco

    rotation = np.empty(9)
    mujoco.mju_quat2Mat(rotation, np.array([q.w, q.x, q.y, q.z], dtype=np.float64))
    body = rotation.reshape(3, 3).T @ np.asarray(v, dtype=np.float64)
    return float(body[0]), float(body[1]), float(body[2])


def fovy_deg(env: Any, view: str) -> float:
    """Vertical field of view of the published image: the camera env's view, else (a
    Gymnasium MuJoCo env's render) the model's free-camera ``fovy``."""
    fovy = env.camera_fovy_deg(view) if hasattr(env, "camera_fovy_deg") else None
    if fovy is None and hasattr(env, "model"):
        fovy = float(env.model.vis.global_.fovy)
    return 45.0 if fovy is None else fovy  # MuJoCo's default
