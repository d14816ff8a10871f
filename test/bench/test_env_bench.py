"""measure_step_rate reports a positive rate for the observation image size."""

import pytest

from liquid_control.bench.env import measure_step_rate
from liquid_control.envs import LANE_KEEPING_ID, LANE_KEEPING_V1_ID


@pytest.mark.parametrize("env_id", [LANE_KEEPING_ID, LANE_KEEPING_V1_ID])
def test_measure_step_rate_reports_rate_and_shape(env_id: str) -> None:
    result = measure_step_rate(n=20, env_id=env_id, track_length_m=150.0)
    assert result["n"] == 20
    assert result["steps_per_s"] > 0
    assert abs(result["ms_per_step"] * result["steps_per_s"] - 1000.0) < 1e-6
    assert result["image_shape"] == [66, 200, 3]
