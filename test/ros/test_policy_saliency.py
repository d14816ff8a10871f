"""policy_node's saliency topic over real rclpy/DDS, and its worker's rate limit."""

from __future__ import annotations

import threading
import time

import numpy as np
import torch
from sensor_msgs.msg import Image

from liquid_control.explain.live import SaliencyWorker
from liquid_control.image import image_to_rgb
from liquid_control.models import CoreConfig, Policy, PolicyConfig, save_checkpoint
from liquid_control.ros.conversions import s_to_stamp

from .conftest import wait_for
from .test_policy_node import start


def test_saliency_overlays_are_published_with_the_frames_stamps(ros, lane_export) -> None:
    h = start(ros, lane_export, timeout_s=30.0, saliency_rate_hz=10.0)
    overlays: list[Image] = []
    h.node.create_subscription(Image, "saliency/image_raw", overlays.append, 10)
    assert wait_for(lambda: h.node.count_publishers("saliency/image_raw") > 0)
    sent = []
    for i in range(30):
        t = 50.0 + 0.05 * i
        h.send(t)
        sent.append(s_to_stamp(t))
        assert wait_for(lambda t=t: len(h.commands_stamped(t)) == 1), f"no command for {t}"
        if overlays and i >= 5:
            break
    # The saliency process starts at the lowest priority: on a busy machine that takes a while.
    assert wait_for(lambda: len(overlays) >= 1, timeout_s=300.0)
    msg = overlays[0]
    assert msg.header.stamp in sent and msg.header.frame_id == "camera"
    assert (msg.height, msg.width, msg.encoding) == (2 * 66, 2 * 200, "rgb8")
    assert image_to_rgb(msg).std() > 0
    # Every frame was answered: the overlay never held a command back.
    assert all(len(h.commands_stamped(50.0 + 0.05 * k)) == 1 for k in range(len(sent)))
    assert wait_for(lambda: int(h.last_diag_values().get("saliency_published", 0)) >= 1)


def test_saliency_is_off_by_default(ros, lane_export) -> None:
    h = start(ros, lane_export, timeout_s=30.0, diagnostics_period_s=0.1)
    h.send(1.0)
    assert wait_for(lambda: len(h.commands_stamped(1.0)) == 1)
    assert h.node.count_publishers("saliency/image_raw") == 0
    assert wait_for(lambda: h.last_diag_values().get("frames") == "1")
    assert "saliency_published" not in h.last_diag_values()


def test_worker_publishes_the_newest_frame_at_most_once_per_period(tmp_path) -> None:
    torch.manual_seed(0)
    policy = Policy(PolicyConfig(core=CoreConfig(kind="gru", units=4))).eval()
    checkpoint = save_checkpoint(tmp_path / "p.safetensors", policy)
    published: list[float] = []
    done = threading.Event()

    def publish(rgb: np.ndarray, stamp: float) -> None:
        assert rgb.shape == (66, 200, 3)
        published.append(stamp)
        done.set()

    # One overlay per 100 s: whatever else arrives waits for the next period.
    worker = SaliencyWorker(str(checkpoint), "visual_backprop", 0.01, publish, lambda f: f, 0.05, 1)
    frame = np.random.default_rng(0).integers(0, 256, (66, 200, 3), dtype=np.uint8)
    state = np.zeros(4, np.float32)
    for k in range(3):
        worker.offer(frame, float(k), state)  # before start: only the newest is kept
    worker.start()
    try:
        assert done.wait(120.0), worker.last_error
        for k in range(3, 10):
            worker.offer(frame, float(k), state)
        time.sleep(0.3)
        assert published == [2.0] and worker.errors == 0
    finally:
        worker.stop()
    assert worker._process is None and worker._thread is None  # noqa: SLF001 - all stopped


def test_a_model_the_saliency_process_cannot_load_is_counted_not_raised(tmp_path) -> None:
    worker = SaliencyWorker(
        str(tmp_path / "missing"), "visual_backprop", 1.0, print, lambda f: f, 0.05
    )
    worker.start()
    try:
        assert wait_for(lambda: worker.errors == 1, timeout_s=120.0)
        assert "missing" in worker.last_error
    finally:
        worker.stop()
