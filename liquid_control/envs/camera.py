"""What the camera envs (lane keeping, drone) share: off-screen views of a MuJoCo world and
the Gymnasium methods built on them (render, close, scene switching, camera intrinsics)."""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

# Views: name -> (camera, height, width); the camera is a model camera or a free-camera
# name that the world's ``render`` places itself (e.g. ``"chase"``).
Views = dict[str, tuple[str, int, int]]


class CameraViews:
    """One off-screen renderer per view, with shadows and reflections off and fog on."""

    model: mujoco.MjModel

    def _make_renderers(self, views: Views) -> None:
        self._views = dict(views)
        self._renderers: dict[str, mujoco.Renderer] = {}
        for view, (_, height, width) in views.items():
            renderer = mujoco.Renderer(self.model, height, width)
            for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION):
                renderer.scene.flags[flag] = 0
            renderer.scene.flags[mujoco.mjtRndFlag.mjRND_FOG] = 1
            self._renderers[view] = renderer

    def segmentation(self, view: str) -> np.ndarray:
        """Geom id of every pixel of a view at the current state, -1 where no geom is seen
        (sky); MuJoCo's segmentation pass of the same renderer, camera and options."""
        renderer = self._renderers[view]
        renderer.enable_segmentation_rendering()
        try:
            ids = self.render(view)
        finally:
            renderer.disable_segmentation_rendering()
        return np.where(ids[..., 1] == mujoco.mjtObj.mjOBJ_GEOM, ids[..., 0], -1)

    def task_mask(self, view: str) -> np.ndarray:
        """Pixels (bool, H x W) of a view that show ``task_geoms``: what a policy should
        look at (ground truth for ``bench attention``)."""
        return np.isin(self.segmentation(view), np.fromiter(self.task_geoms, int))

    @property
    def task_geoms(self) -> frozenset[int]:
        """Geom ids of the objects the task is about; each world says which."""
        raise NotImplementedError

    def fovy_deg(self, view: str) -> float:
        """Vertical field of view (degrees) of a view: its model camera's, else the free
        camera's (the model's global ``fovy``)."""
        camera = self._views[view][0]
        cam_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        return float(self.model.cam_fovy[cam_id] if cam_id >= 0 else self.model.vis.global_.fovy)

    def close(self) -> None:
        """Free the GL contexts."""
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()


class CameraEnv:
    """Gymnasium methods of an env whose ``world`` (a :class:`CameraViews`, built lazily at
    reset) renders an ``"observation"`` view and, with ``render_mode="rgb_array"``, a
    ``"render"`` view; ``scenes`` lists the valid ``scene`` names."""

    world: Any
    scene: str
    scenes: Any
    render_mode: str | None

    def render(self) -> np.ndarray | None:
        """The ``render_camera`` view at ``render_size`` when ``render_mode='rgb_array'``."""
        if self.render_mode != "rgb_array" or self.world is None:
            return None
        return self.world.render("render")

    def close(self) -> None:
        """Release the renderers."""
        if self.world is not None:
            self.world.close()
            self.world = None

    def set_scene(self, scene: str) -> None:
        """Switch scene (e.g. to an unseen one); the world is rebuilt at the next reset."""
        if scene not in self.scenes:
            raise ValueError(f"unknown scene {scene!r}; choose one of {sorted(self.scenes)}")
        if scene != self.scene:
            self.scene = scene
            self.close()

    def camera_fovy_deg(self, view: str = "observation") -> float | None:
        """Vertical field of view (degrees) of a view, once the world exists (after reset)."""
        return None if self.world is None else self.world.fovy_deg(view)
