"""Ground-truth task masks from MuJoCo's segmentation pass, on real renders."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from liquid_control.envs import DRONE_NAV_ID, LANE_KEEPING_ID


def test_lane_mask_is_the_road_and_its_markings_and_rendering_is_unchanged_after() -> None:
    env = gym.make(LANE_KEEPING_ID, track_length_m=300.0)
    try:
        obs, _ = env.reset(seed=0, options={"track_seed": 5, "init_offset_m": 0.0})
        world = env.unwrapped.world
        mask = world.task_mask("observation")
        seg = world.segmentation("observation")
        image = obs["image"]
        assert mask.shape == image.shape[:2] and mask.dtype == bool
        h, w = mask.shape
        assert mask[-3:, w // 2 - 10 : w // 2 + 10].all()  # the road just ahead
        sky = (image[..., 2] > 180) & (image[..., 2] > image[..., 0] + 20)
        # Sky-coloured pixels are mostly no geom at all (fog paints far ground the same).
        assert sky.sum() > 100 and (seg[sky] == -1).mean() > 0.8 and mask[sky].mean() < 0.05
        # The bright lane paint the camera sees is in the mask; the grass is not.
        white = (image.min(-1) > 200) & (np.arange(h)[:, None] > h // 2)
        green = (image[..., 1] > image[..., 0] + 30) & (image[..., 1] > image[..., 2] + 30)
        assert white.sum() > 20 and mask[white].mean() > 0.9
        assert green.sum() > 100 and mask[green].mean() < 0.05
        # Segmentation leaves the colour renderer as it was.
        assert np.array_equal(world.render("observation"), image)
    finally:
        env.close()


def test_drone_mask_is_the_target_and_the_obstacles() -> None:
    env = gym.make(DRONE_NAV_ID)
    try:
        obs, _ = env.reset(seed=3)
        world = env.unwrapped.world
        mask = world.task_mask("observation")
        image = obs["image"].astype(int)
        red = (image[..., 0] > 150) & (image[..., 1] < 80) & (image[..., 2] < 80)
        assert red.sum() > 5 and mask[red].all()  # the target ball
        sky = (image[..., 2] > image[..., 1]) & (image[..., 2] > 180)
        assert sky.sum() > 100 and not mask[sky].any()
        target = {
            int(g) for g in np.flatnonzero(world.model.geom_bodyid == world.model.body("target").id)
        }
        assert target <= world.task_geoms
        assert world.model.geom("ground").id not in world.task_geoms
        assert np.array_equal(world.render("observation"), obs["image"])
    finally:
        env.close()
