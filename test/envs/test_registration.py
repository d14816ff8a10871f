"""What a Gymnasium user gets from ``import liquid_control``."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_package_registers_every_env_and_v0_is_not_called_out_of_date() -> None:
    code = (
        "import gymnasium as gym, liquid_control\n"
        "for env_id in ('LiquidControl/LaneKeeping-v0', 'LiquidControl/LaneKeeping-v1', "
        "'LiquidControl/DroneNav-v0'):\n"
        "    assert env_id in gym.registry, env_id\n"
        "gym.make('LiquidControl/LaneKeeping-v0', track_length_m=150.0).close()\n"
    )
    # Any DeprecationWarning (Gymnasium's "out of date" for v0 is one) fails the run.
    result = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", code],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
