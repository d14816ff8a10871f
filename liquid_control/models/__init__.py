"""Policies: front ends, liquid (CfC/LTC) and baseline cores, checkpoints and export."""

from liquid_control.models.checkpoint import load_checkpoint, save_checkpoint
from liquid_control.models.frontends import FrontendConfig
from liquid_control.models.policy import CoreConfig, Policy, PolicyConfig, parameter_report

__all__ = [
    "CoreConfig",
    "FrontendConfig",
    "Policy",
    "PolicyConfig",
    "load_checkpoint",
    "parameter_report",
    "save_checkpoint",
]
