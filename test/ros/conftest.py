"""Fixtures for tests over real rclpy/DDS: an isolated domain and a spinning executor."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import torch

from liquid_control.models import CoreConfig, Policy, PolicyConfig, save_checkpoint
from liquid_control.models.export import export_policy
from liquid_control.models.frontends import FrontendConfig

rclpy = pytest.importorskip("rclpy")


_DOMAINS = 100  # ids 100-199: below Fast DDS's port-derived limit of 232
_domain_base = int(os.environ.get("LC_TEST_DOMAIN_ID", random.randint(100, 199))) - 100
_domain_count = 0


@pytest.fixture
def domain_id() -> int:
    """A private DDS domain per test: parallel runs start at random ids, and within a run
    each test moves to the next id, so a node or process an earlier test is still tearing
    down on a loaded machine never talks to the next test's graph."""
    global _domain_count
    _domain_count += 1
    return 100 + (_domain_base + _domain_count) % _DOMAINS


@pytest.fixture
def ros(domain_id: int) -> Iterator[object]:
    # One thread, as each node runs under ``ros2 run`` (runtime.py). rclpy's
    # MultiThreadedExecutor re-dispatches a ready entity of a node whose (mutually
    # exclusive) group is busy until a worker takes it: its spin thread then holds the GIL
    # and piles up thousands of empty tasks, and a walker graph made 8 steps/s, not 800.
    from rclpy.executors import SingleThreadedExecutor

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain_id)
    executor = SingleThreadedExecutor(context=context)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield executor, context
    nodes = list(executor.get_nodes())  # shutdown() forgets them: take them first
    executor.shutdown(timeout_sec=2.0)
    for node in nodes:
        node.destroy_node()
    rclpy.shutdown(context=context)
    thread.join(timeout=2.0)


@pytest.fixture(scope="session")
def lane_export(tmp_path_factory) -> str:
    """A small untrained lane policy (PilotNet + 19-neuron CfC NCP), exported."""
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("lane_export")
    policy = Policy(PolicyConfig(name="lane-test", core=CoreConfig(kind="cfc", wiring="ncp")))
    ckpt = save_checkpoint(tmp / "policy.safetensors", policy.eval())
    return str(export_policy(ckpt, tmp / "export", onnx=True).parent)


def set_parameter(client: object, name: str, value: object) -> tuple[bool, str]:
    """``ros2 param set``: one parameter through an ``AsyncParameterClient`` over DDS;
    returns (successful, reason)."""
    from rclpy.parameter import Parameter

    assert client.wait_for_services(timeout_sec=30.0)
    future = client.set_parameters([Parameter(name, value=value)])
    assert wait_for(future.done, 30.0)
    result = future.result().results[0]
    return result.successful, result.reason


def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture(scope="session")
def walker_export(tmp_path_factory) -> str:
    """A small untrained Walker2d policy (vector front end + CfC), exported."""
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("walker_export")
    cfg = PolicyConfig(
        name="walker-test",
        frontend=FrontendConfig(kind="vector", obs_dim=17),
        core=CoreConfig(kind="cfc", units=8, backbone_units=16),
        action_dim=6,
    )
    ckpt = save_checkpoint(tmp / "policy.safetensors", Policy(cfg).eval())
    return str(export_policy(ckpt, tmp / "export", onnx=True).parent)


@pytest.fixture(scope="session")
def drone_export(tmp_path_factory) -> str:
    """A small untrained drone policy (drone conv head + CfC NCP, 4 motor neurons), exported."""
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("drone_export")
    cfg = PolicyConfig(
        name="drone-test",
        frontend=FrontendConfig(kind="drone", image_height=72, image_width=128),
        core=CoreConfig(
            kind="cfc",
            wiring="ncp",
            inter_neurons=6,
            command_neurons=5,
            motor_neurons=4,
            sensory_fanout=3,
            inter_fanout=3,
            motor_fanin=3,
        ),
        action_dim=4,
    )
    ckpt = save_checkpoint(tmp / "policy.safetensors", Policy(cfg).eval())
    return str(export_policy(ckpt, tmp / "export", onnx=True).parent)
