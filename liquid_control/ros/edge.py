"""``policy_node``'s logic, importable and testable without ROS.

The policy itself runs in :class:`liquid_control.models.stateful.StatefulPolicy` (state,
dt from stamps, statistics, the OOD score). This module holds the node's parameter table,
the checks that a loaded export fits those parameters, the validation of vector
observations, the node's health as reported on ``/diagnostics``, and the map from actions
to the Twist-like :class:`Command` the node publishes, within the vehicle's limits and
slowed by ``ood_action``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from liquid_control.explain.saliency import METHODS as SALIENCY_METHODS
from liquid_control.models.export import BACKENDS, DEFAULT_BACKEND, DEFAULT_THREADS
from liquid_control.models.ood import DEFAULT_MIN_SPEED_SCALE, OOD_ACTIONS
from liquid_control.paths import DEFAULT_LANE_MODEL
from liquid_control.ros.bridge import COMMAND_MODES
from liquid_control.ros.params import Param, ParameterError

NAME = "policy_node"
IMAGE_TRANSPORTS = ("raw", "compressed")
PARAMS = [
    Param(
        "model",
        str(DEFAULT_LANE_MODEL),
        "exported model directory or manifest.json",
        read_only=True,
    ),
    Param("backend", DEFAULT_BACKEND, "inference backend", choices=BACKENDS, read_only=True),
    Param(
        "threads",
        DEFAULT_THREADS,
        "inference threads (0: library default; torch's are process-wide)",
        0,
        64,
        read_only=True,
    ),
    Param(
        "trusted_keys",
        "",
        "comma-separated Ed25519 public key files (PEM); when set, an export not signed by "
        "one of them is refused before any model file is opened",
        read_only=True,
    ),
    Param(
        "autostart",
        False,
        "configure and activate at start-up (a model that cannot load exits the node)",
        read_only=True,
    ),
    Param("image_topic", "camera/image_raw", "camera topic (sensor_msgs/Image)", read_only=True),
    Param(
        "image_transport",
        "raw",
        "raw: sensor_msgs/Image on image_topic; compressed: sensor_msgs/CompressedImage "
        "(jpeg, png) on <image_topic>/compressed, as image_transport publishes it",
        choices=IMAGE_TRANSPORTS,
        read_only=True,
    ),
    Param(
        "crop",
        [0, 0, 0, 0],
        "top, bottom, left, right pixels removed from every frame before it is resized to "
        "the model's input (the crop of the dataset's bag2minari mapping)",
        0,
        100_000,
        read_only=True,
    ),
    Param(
        "command_topic",
        "cmd_vel",
        "command topic (geometry_msgs/TwistStamped; sensor_msgs/JointState for vector models)",
        read_only=True,
    ),
    Param(
        "command_mode",
        "curvature",
        "curvature: action is path curvature (1/m), yaw rate = "
        "curvature * speed; velocity: action is [vx, vy, vz, yaw_rate]; vector: the raw "
        "action as JointState effort (vector-input models)",
        choices=COMMAND_MODES,
        read_only=True,
    ),
    Param(
        "observation_topic",
        "observation",
        "vector observation topic (sensor_msgs/JointState, position = observation; "
        "vector-input models)",
        read_only=True,
    ),
    Param("max_abs_action", 1.0, "vector mode: action limit (env action space)", 1e-3, 1e3),
    Param(
        "max_velocity",
        [2.0, 1.0, 1.0, 1.0],
        "velocity mode: limits of |vx|, |vy|, |vz| (m/s) and |yaw rate| (rad/s)",
        1e-3,
        100.0,
    ),
    Param("speed_mps", 10.0, "forward speed in curvature mode (m/s)", 0.0, 40.0),
    Param("max_abs_curvature", 0.2, "steering limit in curvature mode (1/m)", 0.001, 10.0),
    Param(
        "timeout_s", 0.5, "no valid frame for this long publishes the fail-safe command", 0.01, 60.0
    ),
    Param("max_gap_s", 0.5, "a frame gap above this resets the recurrent state", 0.01, 60.0),
    Param("frame_id", "base_link", "frame of the published command"),
    Param("diagnostics_period_s", 1.0, "period of /diagnostics messages (s)", 0.05, 60.0),
    Param(
        "ood_action",
        "none",
        "what a frame scored out of distribution does to the commanded speed (lane: "
        "speed_mps; drone: linear velocity): none; slow: times threshold/score, at least "
        "ood_min_speed_scale; stop: zero above the threshold (needs an export with OOD "
        "statistics: liquid-control ood-calibrate)",
        choices=OOD_ACTIONS,
    ),
    Param(
        "ood_min_speed_scale",
        DEFAULT_MIN_SPEED_SCALE,
        "ood_action slow: the lowest factor on the speed",
        0.0,
        1.0,
    ),
    Param(
        "ood_topic",
        "~/ood_score",
        "std_msgs/Float32: every frame's out-of-distribution score (exports with OOD statistics)",
        read_only=True,
    ),
    Param(
        "saliency_rate_hz",
        0.0,
        "camera models: publish a saliency overlay (sensor_msgs/Image on saliency_topic) of "
        "the newest frame at most this often, computed in a process of its own off the control "
        "path; 0: off",
        0.0,
        30.0,
        read_only=True,
    ),
    Param(
        "saliency_method",
        "visual_backprop",
        "visual_backprop (the conv head's, cheap) or integrated_gradients (the action's, "
        "about 10x the cost)",
        choices=SALIENCY_METHODS,
        read_only=True,
    ),
    Param("saliency_topic", "saliency/image_raw", "topic of the saliency overlay", read_only=True),
]


def watchdog_period_s(timeout_s: float) -> float:
    """How often the watchdog looks: often enough to act within a quarter of the timeout."""
    return min(timeout_s / 4, 0.05)


def check_fits(policy: Any, image_input: bool, mode: str, model: str) -> None:
    """Raise :class:`ParameterError` when ``command_mode`` cannot drive this export: a
    vector model needs ``vector``, an image model ``curvature`` (1 action) or
    ``velocity`` (4 actions)."""
    vector = not image_input
    if vector != (mode == "vector"):
        raise ParameterError(
            f"model {model} takes {'vectors' if vector else 'images'}: "
            f"command_mode must be {'vector' if vector else 'curvature or velocity'}, "
            f"got {mode!r}"
        )
    needed = {"curvature": 1, "velocity": 4}.get(mode)
    if needed is not None and policy.action_dim != needed:
        raise ParameterError(
            f"model {model} outputs {policy.action_dim} actions: command_mode "
            f"{mode!r} needs {needed}"
        )


def check_ood_action(ood: Any, action: str, model: str) -> str | None:
    """Why ``ood_action`` cannot act on this export (``ood``: its OOD statistics), or None."""
    if action != "none" and ood is None:
        return (
            f"ood_action {action!r} needs OOD statistics, which model {model} lacks; add them "
            f"with `liquid-control ood-calibrate {model}`"
        )
    return None


def vector_observation(values: Any, size: int) -> tuple[np.ndarray | None, str]:
    """A ``JointState.position`` as the model's float32 observation, or ``None`` and why
    it is dropped (wrong length, non-finite values)."""
    obs = np.asarray(values, dtype=np.float64)
    if obs.size != size:
        return None, f"dropped observation: {obs.size} values (model takes {size})"
    if not np.all(np.isfinite(obs)):
        return None, "dropped observation: non-finite values"
    return obs.astype(np.float32), ""


def health(
    configure_error: str | None,
    lifecycle: str,
    active: bool,
    failsafe: bool,
    stats: dict[str, Any],
) -> tuple[str, str]:
    """The node's ``/diagnostics`` level (``OK``, ``WARN``, ``ERROR``) and message, the
    worst condition first."""
    if configure_error is not None:
        return "ERROR", configure_error
    if not active:
        return "OK", lifecycle
    if failsafe:
        return "ERROR", "no valid input: fail-safe"
    if stats.get("nonfinite_actions"):
        return "WARN", "non-finite actions"
    score, threshold = stats.get("ood_score"), stats.get("ood_threshold")
    if score is not None and threshold is not None and score > threshold:
        return "WARN", f"out of distribution: score {score:.1f} above threshold {threshold:.1f}"
    if stats.get("dropped_frames"):
        return "WARN", "dropping malformed frames"
    return "OK", "running"


@dataclass
class Command:
    """What the node publishes: forward speed (m/s), lateral and vertical speed, yaw rate."""

    linear_x: float = 0.0
    linear_y: float = 0.0
    linear_z: float = 0.0
    angular_z: float = 0.0


def action_to_command(
    action: np.ndarray,
    mode: str,
    speed_mps: float,
    max_abs_curvature: float = 0.2,
    max_velocity: tuple[float, ...] | list[float] = (2.0, 1.0, 1.0, 1.0),
    speed_scale: float = 1.0,
) -> Command:
    """Map a policy action to a command.

    ``curvature``: the action is path curvature kappa (1/m), limited to
    ``max_abs_curvature`` (the vehicle's steering limit); the command drives at
    ``speed_mps`` with yaw rate kappa * speed (lane keeping). ``velocity``: the
    action is [vx, vy, vz, yaw_rate] in the body frame (drone), each limited to
    ``max_velocity`` (m/s, m/s, m/s, rad/s). ``speed_scale`` (``ood_action``, see
    :func:`liquid_control.models.ood.speed_scale`) multiplies the speed: the lane
    command's speed (its path curvature unchanged), the drone's linear velocity (its yaw
    rate unchanged).
    """
    a = np.asarray(action, dtype=np.float64).reshape(-1)
    if mode == "curvature":
        kappa = float(np.clip(a[0], -max_abs_curvature, max_abs_curvature))
        speed = speed_mps * speed_scale
        return Command(linear_x=speed, angular_z=kappa * speed)
    if mode == "velocity":
        limit = np.asarray(max_velocity, dtype=np.float64)
        padded = np.zeros(4)
        padded[: min(4, a.size)] = a[:4]
        vx, vy, vz, yaw = np.clip(padded, -limit, limit)
        return Command(
            float(vx * speed_scale), float(vy * speed_scale), float(vz * speed_scale), float(yaw)
        )
    raise ValueError(f"unknown command mode {mode!r}")


def failsafe_command() -> Command:
    """Zero curvature and zero speed (lane keeping); hover (drone)."""
    return Command()
