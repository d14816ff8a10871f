"""Perturbation wrappers for camera envs: composable, seeded by ``reset(seed=...)``.

- :class:`GaussianNoise` (``noise=σ``): the NCP paper's pixel noise. The frame is
  standardised per frame (zero mean, unit std, as the policy sees it), N(0, σ²)
  is added there, and the result is mapped back with the frame's own mean/std.
- :class:`BrightnessContrast` (``brightness=b``): a per-episode brightness shift
  U(-b, b) x 255 and contrast factor 1 + U(-b, b).
- :class:`UnseenScene` (``ood=snow``): ground, lane and sky colours never used in
  training (the env's ``scene`` parameter; ``default`` is the training scene).
- :class:`FrameDrop` (``drop=p``): each frame is removed with probability ``p``;
  the env keeps stepping with the held command and the next delivered frame
  carries the summed ``dt``, so ``dt`` varies (at most ``max_run`` in a row).
- :class:`CameraLatency` (``latency=k``): the policy sees the frame from ``k``
  steps ago.
- :class:`BlankFrames` (``blank=k``): the camera delivers stretches of ``k`` frames
  that show nothing (each pixel the frame's mean colour: glare, a wiper, a
  tunnel mouth), a third of all frames on average whatever ``k``. Unlike a dropped
  frame, a blank one arrives on time and must be answered: a policy has only
  what it carries from the frames before to steer through it.

``make_perturbed(env, "noise=0.2,drop=0.5")`` builds a chain from a spec string.
"""

from __future__ import annotations

import collections
import math
from typing import Any

import gymnasium as gym
import numpy as np

from liquid_control.errors import UserError


class _SeededWrapper(gym.Wrapper):
    """A wrapper with its own generator, reseeded from ``reset(seed)``."""

    tag = 0

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.rng = np.random.default_rng(self.tag)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self.rng = np.random.default_rng([seed, self.tag])
        return self.env.reset(seed=seed, options=options)


class _ImageWrapper(_SeededWrapper):
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = super().reset(seed=seed, options=options)
        self.new_episode()
        return self._apply(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._apply(obs), reward, terminated, truncated, info

    def new_episode(self) -> None:
        """Hook for per-episode draws."""

    def _apply(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {**obs, "image": self.perturb(obs["image"])}

    def perturb(self, image: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class GaussianNoise(_ImageWrapper):
    tag = 1

    def __init__(self, env: gym.Env, sigma: float) -> None:
        super().__init__(env)
        self.set_strength(sigma)

    def set_strength(self, sigma: float) -> None:
        if not sigma >= 0:
            raise UserError(f"noise sigma must be >= 0, got {sigma}")
        self.sigma = self.strength = sigma

    def perturb(self, image: np.ndarray) -> np.ndarray:
        x = image.astype(np.float32)
        # N(0, sigma) in the standardised frame is N(0, sigma * std) in pixel space.
        std = max(float(x.std()), 1.0)
        noisy = x + self.sigma * std * self.rng.standard_normal(x.shape, dtype=np.float32)
        return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


class BrightnessContrast(_ImageWrapper):
    tag = 2

    def __init__(self, env: gym.Env, amount: float) -> None:
        super().__init__(env)
        self.set_strength(amount)
        self.shift, self.gain = 0.0, 1.0

    def set_strength(self, amount: float) -> None:
        """Takes effect from the next episode's draw."""
        if not 0 <= amount <= 1:
            raise UserError(f"brightness amount must be in [0, 1], got {amount}")
        self.amount = self.strength = amount

    def new_episode(self) -> None:
        self.shift = float(self.rng.uniform(-self.amount, self.amount)) * 255.0
        self.gain = 1.0 + float(self.rng.uniform(-self.amount, self.amount))

    def perturb(self, image: np.ndarray) -> np.ndarray:
        x = image.astype(np.float32)
        mean = x.mean()
        return np.clip(np.rint((x - mean) * self.gain + mean + self.shift), 0, 255).astype(np.uint8)


class UnseenScene(gym.Wrapper):
    """Switches the env to one of its out-of-distribution scenes (its ``ood_scenes``)."""

    def __init__(self, env: gym.Env, scene: str) -> None:
        super().__init__(env)
        scenes = tuple(getattr(env.unwrapped, "ood_scenes", ()))
        if scene not in scenes:
            raise UserError(f"unknown unseen scene {scene!r}; choose one of {scenes}")
        env.unwrapped.set_scene(scene)
        self.scene = self.strength = scene

    def set_strength(self, scene: str) -> None:
        if scene != self.scene:
            raise UserError(f"the unseen scene is fixed at start-up ({self.scene!r})")


class FrameDrop(_SeededWrapper):
    tag = 3

    def __init__(self, env: gym.Env, p: float, max_run: int = 10) -> None:
        super().__init__(env)
        self.set_strength(p)
        self.max_run = max_run

    def set_strength(self, p: float) -> None:
        if not 0 <= p < 1:
            raise UserError(f"frame drop probability must be in [0, 1), got {p}")
        self.p = self.strength = p

    def step(self, action):
        reward_sum, dt_sum = 0.0, 0.0
        for _ in range(self.max_run + 1):
            obs, reward, terminated, truncated, info = self.env.step(action)
            reward_sum += float(reward)
            dt_sum += float(obs["dt"][0])
            if terminated or truncated or self.rng.random() >= self.p:
                break
        obs = {**obs, "dt": np.array([dt_sum], np.float32)}
        return obs, reward_sum, terminated, truncated, info


class CameraLatency(gym.Wrapper):
    def __init__(self, env: gym.Env, frames: int) -> None:
        super().__init__(env)
        self.frames: collections.deque[np.ndarray] = collections.deque(maxlen=1)
        self.set_strength(frames)

    def set_strength(self, frames: int) -> None:
        """A longer latency repeats the oldest frame held; a shorter one drops old frames."""
        if frames < 0:
            raise UserError(f"latency must be >= 0 frames, got {frames}")
        held = list(self.frames)
        if held:
            held = [held[0]] * (frames + 1 - len(held)) + held
        self.frames = collections.deque(held, maxlen=frames + 1)
        self.strength = frames

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.frames.clear()
        self.frames.extend([obs["image"]] * self.frames.maxlen)
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.frames.append(obs["image"])
        return {**obs, "image": self.frames[0]}, reward, terminated, truncated, info


class BlankStretches:
    """Which frames are blank: stretches of exactly ``frames`` in a row, at least one seen
    frame between two. After a seen frame each next one starts a stretch with probability
    ``1 / (2 * frames)``, so ``2 * frames`` seen frames lie between stretches on average and
    a third of the frames are blank at every length (0: none). The ``blank=k`` perturbation
    and the trainer's ``augment_blank`` both draw from this process."""

    def __init__(self, frames: int, rng: np.random.Generator) -> None:
        self.rng = rng
        self.left, self.rest = 0, False  # blank frames to come; the next frame is seen
        self.set_length(frames)

    def set_length(self, frames: int) -> None:
        """A shorter stretch ends the current one early; a longer one applies from the next."""
        if frames < 0:
            raise UserError(f"blank stretch must be >= 0 frames, got {frames}")
        self.frames = frames
        self.left = min(self.left, frames)

    def reset(self) -> None:
        self.left, self.rest = 0, False

    def next_is_blank(self) -> bool:
        if self.left == 0:
            if self.rest or not self.frames or self.rng.random() >= 0.5 / self.frames:
                self.rest = False
                return False
            self.left = self.frames
        self.left -= 1
        self.rest = self.left == 0
        return True


def blank_frame(image: np.ndarray) -> np.ndarray:
    """``image`` (H, W, C) uint8 with every pixel its per-channel mean: its brightness stays,
    its picture goes."""
    mean = image.reshape(-1, image.shape[-1]).mean(0)
    return np.broadcast_to(np.rint(mean).astype(np.uint8), image.shape).copy()


class BlankFrames(_ImageWrapper):
    """Stretches of ``k`` blank frames (:class:`BlankStretches`, :func:`blank_frame`),
    delivered on time."""

    tag = 4

    def __init__(self, env: gym.Env, frames: int) -> None:
        super().__init__(env)
        self.stretches = BlankStretches(frames, self.rng)
        self.frames = self.strength = frames

    def set_strength(self, frames: int) -> None:
        self.stretches.set_length(frames)
        self.frames = self.strength = frames

    def new_episode(self) -> None:
        self.stretches.rng = self.rng  # reseeded per episode by _ImageWrapper
        self.stretches.reset()

    def perturb(self, image: np.ndarray) -> np.ndarray:
        return blank_frame(image) if self.stretches.next_is_blank() else image


# Applied inside-out in this order: scene, camera latency, frame drops, blank frames,
# photometric (noise lies on a blank frame as on any other).
PERTURBATIONS = {
    "ood": (UnseenScene, str),
    "latency": (CameraLatency, int),
    "drop": (FrameDrop, float),
    "blank": (BlankFrames, int),
    "brightness": (BrightnessContrast, float),
    "noise": (GaussianNoise, float),
}


def parse_spec(spec: str) -> dict[str, Any]:
    """``"noise=0.2,drop=0.5"`` -> ``{"noise": 0.2, "drop": 0.5}``; bad specs are UserErrors."""
    values: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, sep, raw = part.partition("=")
        if not sep or key not in PERTURBATIONS:
            raise UserError(
                f"bad perturbation {part!r}; use key=value with keys {', '.join(PERTURBATIONS)}"
            )
        try:
            values[key] = PERTURBATIONS[key][1](raw)
        except ValueError:
            raise UserError(f"bad value in perturbation {part!r}") from None
        # float() reads "nan" and "inf", which no wrapper's range check can refuse.
        if isinstance(values[key], float) and not math.isfinite(values[key]):
            raise UserError(f"bad value in perturbation {part!r}; use a finite number")
    return values


def make_perturbed(env: gym.Env, spec: str) -> gym.Env:
    values = parse_spec(spec)
    for key, (wrapper, _) in PERTURBATIONS.items():
        if key in values:
            env = wrapper(env, values[key])
    return env


def _wrappers(env: gym.Env) -> dict[str, gym.Wrapper]:
    """The perturbation wrappers of a chain built by :func:`make_perturbed`, by key."""
    found = {}
    while isinstance(env, gym.Wrapper):
        for key, (wrapper, _) in PERTURBATIONS.items():
            if type(env) is wrapper:
                found[key] = env
        env = env.env
    return found


def retune(env: gym.Env, spec: str) -> None:
    """Change the strengths of the perturbations ``env`` was built with: the same kinds,
    new values, all or none (a refused value leaves every strength as it was)."""
    values, wrappers = parse_spec(spec), _wrappers(env)
    if set(values) != set(wrappers):
        fixed = ", ".join(sorted(wrappers)) or "none"
        raise UserError(
            f"perturbation kinds are fixed at start-up (here: {fixed}); at runtime only "
            "their strengths change"
        )
    before = {key: w.strength for key, w in wrappers.items()}
    try:
        for key, value in values.items():
            wrappers[key].set_strength(value)
    except UserError:
        for key, value in before.items():
            wrappers[key].set_strength(value)
        raise
