"""Front ends: turn one observation (camera frame or state vector) into a feature vector.

Image front ends take raw ``uint8`` RGB frames ``(N, H, W, 3)`` exactly as a
camera driver delivers them and do the per-frame normalisation themselves, so an
exported model needs nothing but a resize in front of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal, get_args

import torch
from pydantic import Field, NonNegativeInt, PositiveInt
from torch import Tensor, nn

from liquid_control.schema import SCHEMA_CONFIG, Fraction

# (out_channels, kernel, stride) per conv layer.
PILOTNET_CONVS = ((24, 5, 2), (36, 5, 2), (48, 5, 2), (64, 3, 1), (64, 3, 1))
# Chahine et al. 2023, drone navigation conv head.
DRONE_CONVS = ((24, 5, 2), (36, 5, 2), (48, 5, 2), (64, 3, 1), (16, 3, 2))


FrontendKind = Literal["pilotnet", "drone", "vector"]
FeatureNorm = Literal["layernorm", "tanh", "none"]
InputNorm = Literal["frame", "channel"]
ConvLayer = Annotated[list[PositiveInt], Field(min_length=3, max_length=3)]
"""[out_channels, kernel, stride]"""


@dataclass
class FrontendConfig:
    """Front end of a policy.

    kind: "pilotnet" (lane keeping, 66x200), "drone" (Chahine et al. head) or "vector".
    image_height / image_width: input frame size in pixels (image kinds).
    convs: (out_channels, kernel, stride) per layer; empty means the kind's default.
    features: size of the feature vector fed to the core (image kinds).
    obs_dim: length of the observation vector ("vector" kind; features = obs_dim).
    dropout: dropout before the feature layer (image kinds, training only).
    feature_norm: "layernorm" normalises the features fed to the core per frame (image
        kinds), "tanh" bounds them, "none" leaves them linear (why layernorm is the
        default: docs/training.md).
    input_norm: how each frame is standardised before the convs (image kinds): "frame" over
        all pixels and channels together (removes a change of exposure), "channel" each of
        R, G, B on its own (also removes a colour cast: the light's colour, white balance).
    """

    __pydantic_config__ = SCHEMA_CONFIG

    kind: FrontendKind = "pilotnet"
    image_height: PositiveInt = 66
    image_width: PositiveInt = 200
    convs: list[ConvLayer] = field(default_factory=list)
    features: PositiveInt = 32
    obs_dim: NonNegativeInt = 0
    dropout: Fraction = 0.0
    feature_norm: FeatureNorm = "layernorm"
    input_norm: InputNorm = "frame"

    def conv_layers(self) -> list[tuple[int, int, int]]:
        if self.convs:
            return [(int(c), int(k), int(s)) for c, k, s in self.convs]
        return list(DRONE_CONVS if self.kind == "drone" else PILOTNET_CONVS)


INPUT_NORMS = get_args(InputNorm)
# The first OOD features of an image front end: mean and std of R, G, B over the frame.
FRAME_STATS_FEATURES = 6


def per_frame_standardise(x: Tensor, per_channel: bool = False) -> Tensor:
    """Zero mean, unit variance per frame (N, C, H, W): over all pixels and channels, or,
    ``per_channel``, over the pixels of each channel on its own.

    The standard deviation is floored at 1/sqrt(values), as in
    ``tf.image.per_image_standardization``, so a flat frame (or channel) stays finite.
    """
    dims = (2, 3) if per_channel else (1, 2, 3)
    n = x[0, 0].numel() if per_channel else x[0].numel()
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True, unbiased=False)
    return (x - mean) / torch.clamp(std, min=1.0 / n**0.5)


class ConvFrontend(nn.Module):
    """Conv stack (ReLU) + linear map to ``features``; input raw uint8 or float RGB, NHWC."""

    def __init__(self, cfg: FrontendConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for out, kernel, stride in cfg.conv_layers():
            layers += [nn.Conv2d(channels, out, kernel, stride), nn.ReLU()]
            channels = out
        self.convs = nn.Sequential(*layers)
        try:
            with torch.no_grad():
                flat = self.convs(torch.zeros(1, 3, cfg.image_height, cfg.image_width)).numel()
        except RuntimeError:
            flat = 0
        if flat == 0:
            raise ValueError(
                f"image {cfg.image_height}x{cfg.image_width} is too small for the conv stack"
            )
        self.dropout = nn.Dropout(cfg.dropout)
        self.fc = nn.Linear(flat, cfg.features)
        norms = {
            "layernorm": lambda: nn.LayerNorm(cfg.features, elementwise_affine=False),
            "tanh": nn.Tanh,
            "none": nn.Identity,
        }
        if cfg.feature_norm not in norms:
            raise ValueError(f"feature_norm must be one of {list(norms)}, got {cfg.feature_norm!r}")
        self.norm = norms[cfg.feature_norm]()
        if cfg.input_norm not in INPUT_NORMS:
            raise ValueError(
                f"input_norm must be one of {list(INPUT_NORMS)}, got {cfg.input_norm!r}"
            )
        self.per_channel = cfg.input_norm == "channel"
        self.out_features = cfg.features
        self.input_shape = (cfg.image_height, cfg.image_width, 3)

    @property
    def ood_features(self) -> int:
        """Length of :meth:`encode`'s second output."""
        return FRAME_STATS_FEATURES + self.out_features

    def forward(self, images: Tensor) -> Tensor:
        return self.encode(images)[0]

    def encode(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """(features for the core, out-of-distribution features) of raw frames.

        The OOD features are the mean and standard deviation of each of R, G, B over the
        frame, which the standardisation removes (a new light, colour cast or ground), then
        the core's input. The core's input alone barely moves between the drone's scenes:
        the head is trained to ignore them, which is why the policy flies there at all.
        """
        x = images.permute(0, 3, 1, 2).float()
        pixels = x.flatten(2)
        # Scaled to unit range so the statistics are on the scale of the features after them.
        frame_stats = torch.cat([pixels.mean(2), pixels.std(2, unbiased=False)], 1) / 255.0
        x = self.convs(per_frame_standardise(x, self.per_channel))
        features = self.norm(self.fc(self.dropout(x.flatten(1))))
        return features, torch.cat([frame_stats, features], 1)


class VectorFrontend(nn.Module):
    """Standardises a state vector with a stored mean/std (set from training data)."""

    def __init__(self, cfg: FrontendConfig) -> None:
        super().__init__()
        if cfg.obs_dim <= 0:
            raise ValueError("a vector front end needs obs_dim > 0")
        self.register_buffer("mean", torch.zeros(cfg.obs_dim))
        self.register_buffer("std", torch.ones(cfg.obs_dim))
        self.out_features = cfg.obs_dim
        self.input_shape = (cfg.obs_dim,)

    def set_statistics(self, mean: Tensor, std: Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(torch.clamp(std, min=1e-6))

    @property
    def ood_features(self) -> int:
        return self.out_features

    def forward(self, obs: Tensor) -> Tensor:
        return (obs.float() - self.mean) / self.std

    def encode(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """(features for the core, out-of-distribution features): both the standardised
        state vector."""
        features = self.forward(obs)
        return features, features


def build_frontend(cfg: FrontendConfig) -> ConvFrontend | VectorFrontend:
    if cfg.kind in ("pilotnet", "drone"):
        return ConvFrontend(cfg)
    if cfg.kind == "vector":
        return VectorFrontend(cfg)
    raise ValueError(f"unknown front end {cfg.kind!r}; choose pilotnet, drone or vector")
