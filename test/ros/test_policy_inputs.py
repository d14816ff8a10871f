"""policy_node's compressed camera input and its ``~/reset_state`` service, over real DDS."""

from __future__ import annotations

import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage

from liquid_control.ros.conversions import rgb_to_compressed, rgb_to_image, s_to_stamp

from .conftest import wait_for
from .player import Player, start_node


def frames(n: int, size=(120, 360)) -> list[np.ndarray]:
    """Smooth frames (jpeg keeps them close) that differ from each other."""
    y, x = np.mgrid[0 : size[0], 0 : size[1]]
    return [
        np.stack([(x + 37 * i) % 256, (y * 2 + 11 * i) % 256, (x + y + 5 * i) % 256], -1).astype(
            np.uint8
        )
        for i in range(n)
    ]


def test_jpeg_frames_on_the_compressed_topic_get_commands(ros, lane_export) -> None:
    start_node(ros, lane_export, image_transport="compressed")
    player = Player(ros, compressed=True)
    for i, rgb in enumerate(frames(5)):
        cmd = player.play(rgb_to_compressed(rgb, s_to_stamp(2.0 + 0.05 * i), "camera"))
        assert cmd.twist.linear.x == pytest.approx(10.0) and np.isfinite(cmd.twist.angular.z)
    assert wait_for(lambda: player.diag().get("frames") == "5")
    assert float(player.diag()["latency_p50_ms"]) > 0.0


def test_png_gives_the_command_of_the_raw_frame(ros, lane_export) -> None:
    """png is lossless: the node must act on exactly the frame that was encoded."""
    import cv2

    from liquid_control.models.stateful import StatefulPolicy

    rgb = frames(1)[0]
    start_node(ros, lane_export, image_transport="compressed", max_abs_curvature=10.0)
    player = Player(ros, compressed=True)
    ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    msg = CompressedImage(format="rgb8; png compressed bgr8", data=png.tobytes())
    msg.header.stamp = s_to_stamp(1.0)
    expected, _ = StatefulPolicy.load(lane_export).on_frame(rgb, 1.0)
    assert player.play(msg).twist.angular.z == pytest.approx(float(expected[0]) * 10.0, abs=1e-6)


def test_corrupt_compressed_payloads_are_dropped_and_counted(ros, lane_export) -> None:
    start_node(ros, lane_export, image_transport="compressed")
    player = Player(ros, compressed=True)
    good = rgb_to_compressed(frames(1)[0], s_to_stamp(1.0), "camera")
    bad = [
        CompressedImage(format="jpeg", data=bytes(good.data)[:40]),  # truncated
        CompressedImage(format="jpeg", data=b"not an image at all"),
        CompressedImage(format="jpeg", data=b""),
    ]
    for i, msg in enumerate(bad):
        msg.header.stamp = s_to_stamp(0.5 + 0.01 * i)
        player.pub.publish(msg)
        assert wait_for(lambda i=i: player.diag().get("dropped_frames") == str(i + 1))
    assert np.isfinite(player.play(good).twist.angular.z)  # the node carries on


def test_reset_state_makes_the_next_commands_those_of_a_fresh_node(ros, lane_export) -> None:
    node = start_node(ros, lane_export, max_abs_curvature=10.0)  # no clipping
    player = Player(ros)
    rgbs = frames(6)

    def drive(start_s: float) -> list[float]:
        return [
            player.play(rgb_to_image(rgb, s_to_stamp(start_s + 0.05 * i), "camera")).twist.angular.z
            for i, rgb in enumerate(rgbs)
        ]

    fresh = drive(10.0)  # a just-started node: first dt is the export's dt_s
    carried = drive(10.3)  # the same frames again, 50 ms later: the state carries on
    assert max(abs(a - b) for a, b in zip(fresh, carried, strict=True)) > 1e-6  # state matters

    response = player.reset_state()
    assert response.success, response.message
    assert drive(10.6) == pytest.approx(fresh, abs=1e-9)
    assert wait_for(lambda: player.diag().get("requested_resets") == "1")
    assert player.diag()["state_resets"] == "0"  # no automatic reset was involved
    assert node.requested_resets == 1


def test_crop_parameter_crops_frames_before_the_model_sees_them(ros, lane_export) -> None:
    from liquid_control.image import crop_frame
    from liquid_control.models.stateful import StatefulPolicy

    rgb = frames(1)[0]
    start_node(ros, lane_export, crop=[10, 20, 30, 40], max_abs_curvature=10.0)
    cmd = Player(ros).play(rgb_to_image(rgb, s_to_stamp(1.0), "camera"))
    cropped, _ = StatefulPolicy.load(lane_export).on_frame(crop_frame(rgb, (10, 20, 30, 40)), 1.0)
    whole, _ = StatefulPolicy.load(lane_export).on_frame(rgb, 1.0)
    assert cmd.twist.angular.z == pytest.approx(float(cropped[0]) * 10.0, abs=1e-6)
    assert abs(float(whole[0] - cropped[0])) > 1e-6  # the crop made a difference
