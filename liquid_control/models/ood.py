"""Out-of-distribution monitor: how unlike the training data a policy's input is, per frame.

The exported step returns, beside the action and the state, the frame's OOD features
(``Policy.step_ood``: the colour statistics the front end standardises away, then the
core's input). :func:`fit_ood` fits their training distribution, a mean and a
Ledoit-Wolf shrunk covariance (numpy; the covariance of a few dozen features from a few
thousand correlated frames needs the shrinkage to invert stably), and sets the alarm
threshold at a percentile of the scores of held-out validation episodes. The score of a
frame is its Mahalanobis distance to that distribution (:meth:`OodStats.score`). The
statistics are one file of the export (``ood.safetensors``), hashed by the manifest like
the model files. :func:`speed_scale` turns a score into the factor ``ood_action`` applies
to the commanded speed. No ROS and no torch at run time: numpy only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from liquid_control.errors import UserError

OOD_FILE = "ood.safetensors"
DEFAULT_PERCENTILE = 99.5
# Enough frames that a few dozen features' covariance means something.
MIN_FIT_FRAMES = 50
OodAction = Literal["none", "slow", "stop"]
OOD_ACTIONS: tuple[str, ...] = get_args(OodAction)
DEFAULT_MIN_SPEED_SCALE = 0.5


def ledoit_wolf(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit-Wolf shrunk covariance of the rows of ``x`` and the shrinkage used (0..1).

    The estimator of Ledoit and Wolf (2004) towards a scaled identity, as
    ``sklearn.covariance.ledoit_wolf`` computes it (not a dependency here).
    """
    n, p = x.shape
    xc = x - x.mean(0)
    cov = xc.T @ xc / n
    mu = np.trace(cov) / p
    delta = float(((cov - mu * np.eye(p)) ** 2).sum())
    # Sum over samples of ||x x^T - cov||^2, without forming p x p matrices per sample.
    x2 = xc**2
    beta = float((x2.T @ x2).sum() / n - (cov**2).sum()) / n
    shrinkage = 0.0 if delta == 0.0 else min(beta, delta) / delta
    return (1.0 - shrinkage) * cov + shrinkage * mu * np.eye(p), shrinkage


@dataclass
class OodStats:
    """The training distribution of a policy's OOD features and its alarm threshold.

    mean / precision: of the features (precision = inverse shrunk covariance).
    threshold: scores above it are out of distribution (``percentile`` of validation scores).
    info: how it was calibrated (datasets, frame counts, shrinkage), recorded as written.
    """

    mean: np.ndarray
    precision: np.ndarray
    threshold: float
    percentile: float
    info: dict[str, Any]

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def score(self, features: np.ndarray) -> np.ndarray:
        """Mahalanobis distance of each row of ``features`` ``[N,F]`` -> ``[N]``."""
        d = np.asarray(features, dtype=np.float64).reshape(-1, self.dim) - self.mean
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", d, self.precision, d), 0.0))

    def score_frame(self, features: np.ndarray) -> float:
        """The score of one frame's features (``[F]`` or ``[1,F]``)."""
        return float(self.score(features)[0])

    def marginal(self, columns: slice) -> OodStats:
        """The distribution of the features ``columns`` alone (a Gaussian's marginal: the
        same mean and covariance entries), to score a subset of the features."""
        cov = np.linalg.inv(self.precision)[columns, columns]
        return OodStats(self.mean[columns], np.linalg.inv(cov), math.nan, self.percentile, {})

    def save(self, path: Path) -> None:
        from safetensors.numpy import save_file

        meta = {"threshold": self.threshold, "percentile": self.percentile, **self.info}
        save_file(
            {
                "mean": self.mean.astype(np.float64),
                "precision": self.precision.astype(np.float64),
            },
            str(path),
            metadata={"ood": json.dumps(meta, sort_keys=True)},
        )
        path.chmod(0o644)  # safetensors writes it owner-only; the model files beside it are not

    @classmethod
    def load(cls, path: Path, dim: int) -> OodStats:
        """Read the statistics of an export (its hash already checked); ``dim``: the
        length of the model's OOD feature output, which they must describe."""
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), "numpy") as f:
                meta = json.loads((f.metadata() or {})["ood"])
                mean, precision = f.get_tensor("mean"), f.get_tensor("precision")
            threshold, percentile = float(meta.pop("threshold")), float(meta.pop("percentile"))
        except (SafetensorError, KeyError, ValueError, TypeError, OSError) as e:
            raise UserError(f"OOD statistics {path} cannot be read ({e}); recalibrate") from None
        if mean.shape != (dim,) or precision.shape != (dim, dim):
            raise UserError(
                f"OOD statistics {path} describe {mean.shape[0]} features, the model returns "
                f"{dim}; recalibrate with `liquid-control ood-calibrate`"
            )
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(precision))) or not (
            np.isfinite(threshold) and threshold > 0
        ):
            raise UserError(f"OOD statistics {path} hold non-finite values; recalibrate")
        return cls(mean, precision, threshold, percentile, meta)


def fit_ood(
    fit_features: np.ndarray,
    val_features: np.ndarray,
    percentile: float = DEFAULT_PERCENTILE,
    info: dict[str, Any] | None = None,
) -> OodStats:
    """Fit the distribution on ``fit_features`` (training frames) and set the threshold at
    ``percentile`` of the scores of ``val_features`` (held-out frames of other episodes)."""
    if not 50.0 <= percentile < 100.0:
        raise UserError(f"percentile must be in [50, 100), got {percentile}")
    fit = np.asarray(fit_features, dtype=np.float64)
    val = np.asarray(val_features, dtype=np.float64)
    if len(fit) < MIN_FIT_FRAMES or len(val) < 1:
        raise UserError(
            f"OOD calibration needs at least {MIN_FIT_FRAMES} training frames and one "
            f"validation frame, got {len(fit)} and {len(val)}; use a larger dataset"
        )
    # Shrunk towards the identity in standardised units: the colour statistics vary a
    # hundred times less than the core's input, and shrinking towards their common mean
    # variance would drown exactly the directions a new scene moves along.
    scale = np.maximum(fit.std(0), 1e-6)
    corr, shrinkage = ledoit_wolf(fit / scale)
    precision = np.linalg.inv(corr) / np.outer(scale, scale)
    stats = OodStats(fit.mean(0), precision, 0.0, float(percentile), {})
    val_scores = stats.score(val)
    stats.threshold = float(np.percentile(val_scores, percentile))
    stats.info = {
        **(info or {}),
        "fit_frames": len(fit),
        "val_frames": len(val),
        "shrinkage": round(shrinkage, 6),
        "val_score_median": float(np.median(val_scores)),
    }
    return stats


def auroc(in_scores: Iterable[float], out_scores: Iterable[float]) -> float:
    """Area under the ROC curve of a score that should be higher for ``out_scores``
    (Mann-Whitney U over n_in * n_out; ties count one half)."""
    neg = np.asarray(list(in_scores), dtype=np.float64)
    pos = np.asarray(list(out_scores), dtype=np.float64)
    if neg.size == 0 or pos.size == 0:
        raise ValueError("AUROC needs scores of both classes")
    values = np.concatenate([neg, pos])
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size)
    ranks[order] = np.arange(1, values.size + 1)
    # Average ranks over ties.
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    ranks = (sums / counts)[inverse]
    u = ranks[neg.size :].sum() - pos.size * (pos.size + 1) / 2
    return float(u / (neg.size * pos.size))


def speed_scale(
    score: float | None,
    threshold: float,
    action: str,
    min_scale: float = DEFAULT_MIN_SPEED_SCALE,
) -> float:
    """The factor on the commanded speed for a frame scored ``score``.

    ``none`` (or no score): 1. ``stop``: 0 above the threshold. ``slow``: 1 up to the
    threshold, then ``threshold / score`` (the speed falls as the score rises), never
    below ``min_scale``.
    """
    if action not in OOD_ACTIONS:
        raise ValueError(f"ood_action must be one of {OOD_ACTIONS}, got {action!r}")
    if action == "none" or score is None or not score > threshold:
        return 1.0
    if action == "stop":
        return 0.0
    return float(max(min_scale, threshold / score))


MAX_FIT_FRAMES = 20000
ENCODE_CHUNK = 256


def episode_features(
    policy: Any, episodes: Sequence[Any], max_frames: int = MAX_FIT_FRAMES
) -> np.ndarray:
    """OOD features of the frames of ``episodes`` (``Episode`` arrays) as ``policy`` (a
    torch ``Policy``) sees them, running each episode as one sequence; at most
    ``max_frames`` frames, taken evenly from every episode."""
    import torch

    total = sum(len(ep) for ep in episodes)
    stride = max(1, -(-total // max_frames))
    out = []
    with torch.inference_mode():
        for ep in episodes:
            # Frames only: the OOD features do not depend on the recurrent state, so every
            # ``stride``-th frame is encoded on its own, in chunks that bound the memory of
            # the conv activations.
            frames = ep.obs[::stride]
            for start in range(0, len(frames), ENCODE_CHUNK):
                obs = torch.from_numpy(np.ascontiguousarray(frames[start : start + ENCODE_CHUNK]))
                out.append(policy.frontend.encode(obs)[1].double().numpy())
    return np.concatenate(out)[:max_frames]


def calibrate_episodes(
    policy: Any,
    episodes: Sequence[Any],
    fit_ids: Sequence[int],
    val_ids: Sequence[int],
    percentile: float = DEFAULT_PERCENTILE,
    info: dict[str, Any] | None = None,
) -> OodStats:
    """Fit ``policy``'s OOD statistics on episodes ``fit_ids`` and set the threshold on
    episodes ``val_ids`` (whole episodes apart, so the threshold sees frames the fit did
    not: neighbouring frames of one episode are nearly copies)."""
    if len(val_ids) == 0:
        raise UserError(
            "OOD calibration needs at least one validation episode (a dataset of two or "
            "more episodes and a validation fraction > 0)"
        )
    policy.eval()
    fit = episode_features(policy, [episodes[i] for i in fit_ids])
    val = episode_features(policy, [episodes[i] for i in val_ids])
    return fit_ood(fit, val, percentile, info)
