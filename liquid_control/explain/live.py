"""Saliency beside a control loop: the newest frame's map, computed off the control path.

:class:`SaliencyWorker` computes maps in a process of its own that runs only on CPU time
nothing else wants (Linux ``SCHED_IDLE``) and with one torch thread, so neither the
interpreter lock nor a core is taken from the control loop. The control loop hands it each
frame with :meth:`~SaliencyWorker.offer`, which only keeps a reference to the newest one
(no copy, no compute). A pump thread wakes at most ``rate_hz`` times a second, sends the
newest frame (resized to the model's input) to the process, waits for its overlay (the wait
releases the lock) and hands it to ``publish``. Frames that arrive meanwhile replace each
other, so a slow map never queues work. ``policy_node`` uses it for its saliency topic.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from liquid_control.models.policy import Policy

# The saliency process starts this much nicer than the node (then SCHED_IDLE, where there is).
NICENESS = 19


def load_torch_policy(model: str, trusted_keys: Sequence[str] = ()) -> Policy:
    """The eager policy of an export (or a ``.safetensors`` checkpoint), verified as the node
    verifies its model."""
    from liquid_control.models.export import load_exported

    return load_exported(model, "eager", trusted_keys=trusted_keys).torch_policy


def _yield_the_cpu() -> None:
    """From now on run only on CPU time nothing else wants (Linux's SCHED_IDLE class; where
    it is missing, ``nice`` is all there is)."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def _serve(
    conn: Any, model: str, trusted_keys: Sequence[str], method: str, dt_s: float, scale: int
) -> None:
    """The saliency process: (frame, state) in, ("ok", overlay) or ("error", why) out.

    Start-up (torch, the model) runs at the lowest ``nice``, so that it finishes on a busy
    machine too; the maps run in SCHED_IDLE."""
    os.nice(NICENESS)
    import torch

    from liquid_control.explain.saliency import overlay, saliency

    torch.set_num_threads(1)
    try:
        policy = load_torch_policy(model, trusted_keys)
    except Exception as e:  # reported to the node, which counts it
        conn.send(("error", f"{type(e).__name__}: {e}"))
        return
    _yield_the_cpu()
    conn.send(("ready", None))
    while True:
        try:
            item = conn.recv()
        except EOFError:
            return
        if item is None:
            return
        frame, state = item
        try:
            conn.send(("ok", overlay(frame, saliency(method, policy, frame, dt_s, state), scale)))
        except Exception as e:
            conn.send(("error", f"{type(e).__name__}: {e}"))


class SaliencyWorker:
    """Rate-limited saliency overlays of the newest offered frame (see the module docstring).

    ``model``: the export to explain (loaded again, eagerly, by the saliency process).
    ``publish(overlay_rgb, stamp)`` is called from the pump thread; ``preprocess`` maps an
    offered frame to the model's input (the runner's resize). ``dt_s``: the time span the
    gradient method steps with (the export's training dt).
    """

    def __init__(
        self,
        model: str,
        method: str,
        rate_hz: float,
        publish: Callable[[np.ndarray, Any], None],
        preprocess: Callable[[np.ndarray], np.ndarray],
        dt_s: float,
        scale: int = 2,
        trusted_keys: Sequence[str] = (),
    ) -> None:
        if rate_hz <= 0:
            raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
        self.model = str(model)
        self.trusted_keys = tuple(str(k) for k in trusted_keys)
        self.method = method
        self.period_s = 1.0 / rate_hz
        self.publish = publish
        self.preprocess = preprocess
        self.dt_s = dt_s
        self.scale = scale
        self.published = 0
        self.errors = 0
        self.last_error = ""
        self._newest: tuple[np.ndarray, Any, np.ndarray] | None = None
        self._wake = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._process: Any = None
        self._conn: Any = None

    def offer(self, frame: np.ndarray, stamp: Any, state: np.ndarray) -> None:
        """The control loop's call: keep ``frame`` (and the state its step started from)
        as the newest; O(1)."""
        with self._wake:
            self._newest = (frame, stamp, state)
            self._wake.notify()

    def start(self) -> None:
        if self._thread is not None:
            return
        ctx = multiprocessing.get_context("spawn")  # never fork a process running DDS threads
        self._conn, child = ctx.Pipe()
        args = (child, self.model, self.trusted_keys, self.method, self.dt_s, self.scale)
        self._process = ctx.Process(target=_serve, args=args, name="saliency", daemon=True)
        self._process.start()
        child.close()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="saliency-pump", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stop = True
            self._newest = None
            self._wake.notify()
        if self._process is not None:
            self._process.terminate()  # the pump's wait ends with EOF
            self._process.join(timeout=5.0)
            self._process = None
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _take(self) -> tuple[np.ndarray, Any, np.ndarray] | None:
        with self._wake:
            while self._newest is None and not self._stop:
                self._wake.wait()
            item, self._newest = self._newest, None
            return None if self._stop else item

    def _failed(self, why: str) -> None:
        self.errors += 1
        self.last_error = why

    def _run(self) -> None:
        conn = self._conn
        try:
            status, why = conn.recv()
            if status != "ready":
                self._failed(why)
                return
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
                conn.send((self.preprocess(frame), np.asarray(state, np.float32)))
                status, value = conn.recv()
                if status == "ok":
                    self.publish(value, stamp)
                    self.published += 1
                else:
                    self._failed(value)
        except (EOFError, OSError):
            return  # stopped (or the process died): control goes on without overlays
