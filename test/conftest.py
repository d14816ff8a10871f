"""Markers by place: every test under ``test/ros`` needs the ROS 2 client libraries, so it
carries the ``ros`` marker (``pytest -m "not ros"`` runs without them). ``slow`` is set by
the modules and tests that train, install or run whole graphs (``pytest -m "not slow"``)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROS_TESTS = Path(__file__).parent / "ros"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if ROS_TESTS in item.path.parents:
            item.add_marker(pytest.mark.ros)
