"""bench walker on a tiny budget, and the temporal-dropout windows it evaluates on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from liquid_control.bench.walker import OBS_DIM, Split, make_windows, window_starts
from liquid_control.cli import main

pytestmark = pytest.mark.slow  # trains walker predictors


def _split(steps: int = 30) -> Split:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(steps, OBS_DIM + 6)).astype(np.float32)
    dt = np.full(steps, 0.008, np.float32)
    dt[5] = 0.016  # one irregular step
    return Split([z], [z[:, :OBS_DIM]], [dt])


def test_windows_predict_the_next_observation() -> None:
    split = _split()
    rows = window_starts(split, 10)
    assert len(rows) == 20 and rows[-1].tolist() == [0, 19]
    x, dt, y = make_windows(split, rows, 10, 0.0, np.random.default_rng(0))
    assert x.shape == (20, 10, OBS_DIM + 6) and dt.shape == (20, 10)
    np.testing.assert_array_equal(x[3], split.z[0][3:13])
    np.testing.assert_array_equal(y[3], split.obs[0][13])


@pytest.mark.parametrize("drop", [0.3, 0.5, 0.7])
def test_dropped_steps_keep_the_last_step_and_sum_their_dt(drop: float) -> None:
    split = _split()
    rows = window_starts(split, 10)
    x, dt, y = make_windows(split, rows, 10, drop, np.random.default_rng(1))
    kept = 10 - round(drop * 9)
    assert x.shape[1] == kept
    full_x, full_dt, full_y = make_windows(split, rows, 10, 0.0, np.random.default_rng(1))
    np.testing.assert_array_equal(x[:, -1], full_x[:, -1])  # the newest step always stays
    np.testing.assert_array_equal(y, full_y)
    # The trainer's rule: a kept step's dt is the time since the previous kept frame (for the
    # first, since the frame before the window), so the kept dts add up to the whole window's.
    for n in range(len(rows)):
        first = next(i for i in range(10) if np.array_equal(full_x[n, i], x[n, 0]))
        assert dt[n, 0] == pytest.approx(full_dt[n, : first + 1].sum(), rel=1e-6)
        assert dt[n].sum() == pytest.approx(full_dt[n].sum(), rel=1e-6)
    assert (dt > 0.008 + 1e-6).any()


def test_tiny_walker_bench_writes_json_table_and_plots(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    dataset = "liquid_control/walker2d-random-v0"
    assert main(["collect", "walker", "--level", "random", "--episodes", "10"]) == 0
    bench = {
        "datasets": [dataset],
        "models": {
            "CfC": {"kind": "cfc", "units": 8, "backbone_units": 16},
            "LSTM": {"kind": "lstm", "units": 8},
        },
        "seeds": [0, 1],
        "epochs": 2,
        "history": 6,
        "rollout_ks": [1, 2],
        "max_train_windows": 100,
        "eval_windows": 50,
        "closed_loop": {
            "train_config": "config/train_walker.yaml",
            "models": {
                "CfC NCP": {"kind": "cfc", "wiring": "autoncp", "units": 12, "motor_neurons": 6}
            },
            "epochs": 1,
            "episodes": 2,
            "ros_episodes": 1,
        },
        "out_dir": str(tmp_path / "runs"),
        "expert_dir": str(tmp_path / "no_expert"),
    }
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump(bench))
    out = tmp_path / "results"
    assert (
        main(["bench", "walker", "--config", str(tmp_path / "bench.yaml"), "--out", str(out)]) == 0
    )
    result = json.loads((out / "walker.json").read_text())
    assert set(result["summary"]) == {
        "CfC",
        "CfC (irregular training)",
        "LSTM",
        "LSTM (irregular training)",
    }
    cfc = result["summary"]["CfC"]
    assert cfc["test_mse"]["n"] == 2 and cfc["test_mse"]["mean"] > 0
    assert set(cfc["rollout_rmse"]) == {"1", "2"} and set(cfc["dropout_mse"]) == {
        "0.0",
        "0.3",
        "0.5",
        "0.7",
    }
    assert cfc["noise_rmse_ratio"]["0.0"]["mean"] == pytest.approx(1.0)
    assert len(result["runs"]) == 6 and all(len(r["history"]) == 2 for r in result["runs"])
    # Runs go one at a time and say what else the machine was doing.
    assert cfc["cpu_seconds_per_epoch"]["mean"] > 0 and cfc["max_load_average_1min"] >= 0
    assert "| CPU s/epoch | load |" in (out / "walker.md").read_text()
    for plot in result["plots"]:
        assert Path(plot).read_bytes()[:4] == b"\x89PNG"
    data = json.loads((out / "walker_data.json").read_text())
    assert data["datasets"][dataset]["episodes"] == 10 and data["expert"] is None
    assert data["datasets"][dataset]["steps"] == result["data"]["steps"]
    loop = result["closed_loop"]["CfC NCP"]
    assert loop["sim"]["episodes"] == 2 and loop["sim"]["mean_length"] > 0
    assert loop["ros"]["episodes_finished"] >= 1 and loop["ros"]["steps"] > 0
    table = (out / "walker.md").read_text()
    assert "| CfC | " in table and "RMSE K=2" in table
