"""Saliency beside a control loop: the newest frame's map, computed off the control path.

:class:`SaliencyWorker` owns one thread. The control loop hands it each frame with
:meth:`~SaliencyWorker.offer` (it only keeps a reference to the newest one: no copy, no
compute); the thread wakes at most ``rate_hz`` times a second, computes the newest frame's
map with :mod:`liquid_control.explain.saliency` on its own eager copy of the policy, draws
the overlay and hands it to ``publish``. A slow map never delays a command: frames that
arrive meanwhile replace each other, and the one in hand is skipped when a newer one has
arrived by the time the thread is free. ``policy_node`` uses it for its saliency topic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from liquid_control.explain.saliency import overlay, saliency
from liquid_control.models.policy import Policy


class SaliencyWorker:
    """Rate-limited saliency overlays of the newest offered frame, on a thread of its own.

    ``publish(overlay_rgb, stamp)`` is called from the worker thread; ``preprocess`` maps an
    offered frame to the model's input (the runner's resize). ``dt_s``: the time span the
    gradient method steps with (the export's training dt).
    """

    def __init__(
        self,
        policy: Policy,
        method: str,
        rate_hz: float,
        publish: Callable[[np.ndarray, Any], None],
        preprocess: Callable[[np.ndarray], np.ndarray],
        dt_s: float,
        scale: int = 2,
    ) -> None:
        if rate_hz <= 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
        self.policy = policy
        self.method = method
        self.period_s = 1.0 / rate_hz
        self.publish = publish
        self.preprocess = preprocess
        self.dt_s = dt_s
        self.scale = scale
        self.published = 0
        self.errors = 0
        self._newest: tuple[np.ndarray, Any, np.ndarray] | None = None
        self._wake = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    def offer(self, frame: np.ndarray, stamp: Any, state: np.ndarray) -> None:
        """The control loop's call: keep ``frame`` (and the state its step started from)
        as the newest; O(1)."""
        with self._wake:
            self._newest = (frame, stamp, state)
            self._wake.notify()

    def start(self) -> None:
        if self._thread is None:
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="saliency", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stop = True
            self._newest = None
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None

    def _take(self) -> tuple[np.ndarray, Any, np.ndarray] | None:
        with self._wake:
            while self._newest is None and not self._stop:
                self._wake.wait()
            item, self._newest = self._newest, None
            return None if self._stop else item

    def _run(self) -> None:
        next_s = time.monotonic()
        while True:
            delay = next_s - time.monotonic()
            if delay > 0:
                with self._wake:
                    if self._wake.wait_for(lambda: self._stop, timeout=delay):
                        return
            item = self._take()
            if item is None:
                return
            next_s = time.monotonic() + self.period_s
            frame, stamp, state = item
            try:
                model_frame = self.preprocess(frame)
                m = saliency(self.method, self.policy, model_frame, self.dt_s, state)
                self.publish(overlay(model_frame, m, self.scale), stamp)
                self.published += 1
            except Exception:  # a failed overlay must never stop control: count it, go on
                self.errors += 1
