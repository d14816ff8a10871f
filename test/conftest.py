"""Markers by place: every test under ``test/ros`` needs the ROS 2 client libraries, so it
carries the ``ros`` marker (``pytest -m "not ros"`` runs without them). ``slow`` is set by
the modules and tests that train, install or run whole graphs (``pytest -m "not slow"``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

# Tests check behaviour, not speed: one intra-op thread per test process, so a run beside
# other busy processes (CI runs the suite beside two) does not oversubscribe the cores. With
# two threads on a loaded 2-core machine, OpenMP's waiting threads made a PilotNet rollout
# 14x slower (test_export: 14 s instead of 1 s).
torch.set_num_threads(1)

ROS_TESTS = Path(__file__).parent / "ros"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if ROS_TESTS in item.path.parents:
            item.add_marker(pytest.mark.ros)
