"""Export a policy's single control step for the edge, and load it back behind one ``step``.

``export_policy`` traces ``Policy.step`` (one step, never a whole sequence: a
traced sequence silently freezes its length) and freezes it for TorchScript
(conv weights channels-last), exports the same step to ONNX, and writes a manifest with the
model config, the training dt_s, the input/output/state spec and the sha256 of every file,
sealed by one digest and optionally signed (see :mod:`liquid_control.models.manifest`).
``load_exported`` verifies the manifest and hashes (and the signature, given trusted
keys) before opening any model file, checks the loaded model's I/O against the
manifest, and returns an :class:`EdgePolicy` whose ``step`` is the same call for every backend.
"""

from __future__ import annotations

import copy
import json
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from torch import Tensor, nn

from liquid_control.atomic import atomic_dir
from liquid_control.errors import UserError
from liquid_control.models.checkpoint import load_checkpoint, read_checkpoint
from liquid_control.models.manifest import (
    MANIFEST_FORMAT,
    OOD_OUTPUT,
    OUTPUT_NAMES,
    check_model_io,
    check_onnx_io,
    io_spec,
    load_signing_key,
    model_errors_refused,
    read_manifest,
    seal_manifest,
    sha256,
)
from liquid_control.models.manifest import verified_file as _verified_file
from liquid_control.models.ood import (
    OOD_FILE,
    OodStats,
)
from liquid_control.models.policy import Policy, PolicyConfig

BACKENDS = ("torchscript", "onnxruntime", "eager")
# ONNX Runtime: the fastest batch-1 step here and the tightest tail under CPU load
# (bench edge: about 0.48 ms against TorchScript's 0.74 ms, same run), and it executes no
# Python stored in the file.
DEFAULT_BACKEND = "onnxruntime"
# One intra-op thread: on a robot computer other processes want the cores, and a second
# inference thread that waits (spins) for a busy core turns a 1 ms step into 100+ ms
# (bench edge --load measures both).
DEFAULT_THREADS = 1
# The first dt after a start or reset, for exports made before the manifest recorded
# the training dt_s (the lane world's frame period).
LEGACY_DT_S = 0.05
FILES = {
    "checkpoint": "policy.safetensors",
    "torchscript": "step.pt",
    "onnx": "step.onnx",
    "ood": OOD_FILE,
}


class StepModule(nn.Module):
    """``(obs[1,...], dt[1], state[1,S]) -> (action[1,A], state[1,S], ood_features[1,F])``:
    the traced unit (``Policy.step_ood``)."""

    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, obs: Tensor, dt: Tensor, state: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return self.policy.step_ood(obs, dt, state)


def example_inputs(policy: Policy, batch: int = 1) -> tuple[Tensor, Tensor, Tensor]:
    if policy.cfg.frontend.kind == "vector":
        obs = torch.zeros(batch, *policy.obs_shape)
    else:
        obs = torch.zeros(batch, *policy.obs_shape, dtype=torch.uint8)
    return obs, torch.full((batch,), 0.05), policy.initial_state(batch)


def set_torch_threads(threads: int) -> None:
    """Set torch's intra-op thread count for the whole process (0 keeps torch's default).

    Torch has one intra-op pool per process, so this is not a property of one model:
    the process that runs inference (a node executable, a CLI verb) calls it once at
    start-up. ONNX Runtime sessions take their threads per session instead.
    """
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _export_torchscript(step: StepModule, inputs: tuple[Tensor, ...], path: Path) -> None:
    # Conv weights in channels-last order match the frame's own layout (NHWC permuted to
    # NCHW is channels-last already), so oneDNN runs the convs without reordering: 10-20%
    # faster at batch 1 (bench edge). Only the memory order changes, never a value.
    step = copy.deepcopy(step).to(memory_format=torch.channels_last)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # trace is marked deprecated in 2.13 but is what we want
        traced = torch.jit.trace(step, inputs, check_trace=False)
        frozen = torch.jit.freeze(traced.eval())
    frozen.save(str(path))


def _export_onnx(step: StepModule, inputs: tuple[Tensor, ...], path: Path) -> None:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            step,
            inputs,
            str(path),
            input_names=["obs", "dt", "state"],
            output_names=list(OUTPUT_NAMES),
            opset_version=17,
            dynamo=False,
        )


def export_policy(
    checkpoint: str | Path,
    out_dir: str | Path,
    onnx: bool = True,
    sign_key: str | Path | Ed25519PrivateKey | None = None,
    dt_s: float | None = None,
    ood: OodStats | None = None,
) -> Path:
    """Export a checkpoint into ``out_dir`` (replaced atomically); return the manifest path.

    ``sign_key``: an Ed25519 private key (PEM) that signs the manifest's digest.
    ``dt_s`` is the time between frames the policy was trained at (the first ``dt`` a
    closed loop feeds it after a start or reset); default: the one the trainer recorded
    in the checkpoint. ``ood``: the training distribution of the policy's OOD features
    (:mod:`liquid_control.models.ood`), written as a file of the export.
    """
    # A bad key is refused before minutes of tracing, not after.
    signing_key = sign_key
    if signing_key is not None and not isinstance(signing_key, Ed25519PrivateKey):
        signing_key = load_signing_key(signing_key)
    policy, info = load_checkpoint(checkpoint)
    dt_s = dt_s if dt_s is not None else info.get("dt_s")
    if dt_s is not None and not (isinstance(dt_s, int | float) and 0.0 < dt_s < 10.0):
        raise UserError(f"dt_s must be a time between frames in seconds (0, 10), got {dt_s!r}")
    step = StepModule(policy).eval()
    inputs = example_inputs(policy)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        shutil.copyfile(checkpoint, tmp / FILES["checkpoint"])
        _export_torchscript(step, inputs, tmp / FILES["torchscript"])
        names = ["checkpoint", "torchscript"]
        if onnx:
            _export_onnx(step, inputs, tmp / FILES["onnx"])
            names.append("onnx")
        if ood is not None:
            if ood.dim != policy.ood_features:
                raise UserError(
                    f"OOD statistics of {ood.dim} features do not fit this policy's "
                    f"{policy.ood_features}"
                )
            ood.save(tmp / FILES["ood"])
            names.append("ood")
        manifest = {
            "format": MANIFEST_FORMAT,
            "name": policy.cfg.name,
            "config": policy.cfg.to_dict(),
            "dt_s": None if dt_s is None else float(dt_s),
            "info": info,
            **io_spec(policy),
            "files": {n: {"path": FILES[n], "sha256": sha256(tmp / FILES[n])} for n in names},
        }
        manifest = seal_manifest(manifest, signing_key)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return out_dir / "manifest.json"


class EdgePolicy:
    """One ``step`` over numpy arrays whatever the backend; holds no recurrent state itself.
    ``manifest`` is the parsed manifest (config, input/output spec).

    ``step(obs, dt, state) -> (action, state)`` with ``obs`` shaped like the
    manifest's ``inputs.obs`` (batch 1), ``dt`` in seconds. ``dt_s`` is the training
    time between frames, the ``dt`` of a first step.

    ``threads`` is the ONNX Runtime session's intra-op thread count (0: its default),
    with spinning off so a waiting thread yields the core. Torch's threads are
    process-wide: :func:`set_torch_threads` sets them, never a model load.
    """

    def __init__(
        self,
        manifest: str | Path,
        backend: str = DEFAULT_BACKEND,
        threads: int = DEFAULT_THREADS,
        *,
        trusted_keys: Sequence[str | Path] = (),
    ) -> None:
        if backend not in BACKENDS:
            raise UserError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if threads < 0:
            raise UserError(f"threads must be >= 0 (0: the library default), got {threads}")
        self.backend = backend
        if Path(manifest).suffix == ".safetensors":
            # A bare checkpoint runs eagerly; its spec is what export would write.
            if backend != "eager":
                raise UserError(f"{manifest} is a checkpoint: export it for {backend}")
            if trusted_keys:
                raise UserError(
                    f"{manifest} is a bare checkpoint, which carries no signature, but trusted "
                    "keys were given; export it with --sign and load the export"
                )
            self._policy, info = load_checkpoint(manifest)
            cfg = self._policy.cfg
            self.manifest = {
                "name": cfg.name,
                "config": cfg.to_dict(),
                "dt_s": info.get("dt_s"),
                **io_spec(self._policy),
            }
            self.root = Path(manifest).parent
        else:
            self.manifest, self.root = read_manifest(manifest, trusted_keys)
            with model_errors_refused(f"model {self.root} ({backend}) cannot be loaded"):
                self._load_backend(threads)
            if backend == "onnxruntime":
                check_onnx_io(self._session, self.manifest, f"{self.root} ({backend})")
        spec = self.manifest["inputs"]
        self.obs_shape = tuple(spec["obs"]["shape"])
        self.obs_dtype = np.dtype(spec["obs"]["dtype"])
        self.state_shape = tuple(spec["state"]["shape"])
        self.action_dim = int(self.manifest["config"]["action_dim"])
        self.dt_s = float(self.manifest.get("dt_s") or LEGACY_DT_S)
        self.has_ood_features = OOD_OUTPUT in self.manifest["outputs"]
        check_model_io(self._run, self.manifest, f"{self.root} ({backend})")
        self.ood: OodStats | None = None
        """The OOD statistics of the export, when it was calibrated (``ood-calibrate``)."""
        if "ood" in self.manifest.get("files", {}):
            path = _verified_file(self.manifest, self.root, "ood")
            self.ood = OodStats.load(path, self.manifest["outputs"][OOD_OUTPUT]["shape"][-1])
        self._warm_up()

    def _warm_up(self, calls: int = 3) -> None:
        """TorchScript optimises on its first calls (hundreds of ms); pay that at load time."""
        state = self.initial_state()
        obs = np.zeros(self.obs_shape, dtype=self.obs_dtype)
        for _ in range(calls):
            _, state = self.step(obs, self.dt_s, state)

    def _load_backend(self, threads: int) -> None:
        if self.backend == "onnxruntime":
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            # A spinning worker burns the core another process needs and then waits for it.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
            path = _verified_file(self.manifest, self.root, "onnx")
            self._session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
            # The exporter drops inputs a model never reads (dt of the feed-forward baseline).
            self._onnx_inputs = {i.name for i in self._session.get_inputs()}
        elif self.backend == "torchscript":
            path = _verified_file(self.manifest, self.root, "torchscript")
            # Not torch.jit.optimize_for_inference: its MKL-DNN conversions made the batch-1
            # step slower at one thread (bench edge history).
            self._module = torch.jit.load(str(path)).eval()
        else:
            path = _verified_file(self.manifest, self.root, "checkpoint")
            cfg, _, _ = read_checkpoint(path)
            # Compared as configs: a key added since the export (with its default) still matches.
            if cfg != PolicyConfig.from_dict(self.manifest["config"]):
                raise UserError(f"checkpoint {path} does not match the manifest's config")
            self._policy, _ = load_checkpoint(path)

    @property
    def torch_policy(self) -> Policy:
        """The eager policy itself (backend ``eager``), for what needs its gradients or
        feature maps (saliency)."""
        if self.backend != "eager":
            raise UserError(
                f"{self.root}: the torch policy needs backend eager, not {self.backend}"
            )
        return self._policy

    def initial_state(self) -> np.ndarray:
        return np.zeros(self.state_shape, dtype=np.float32)

    def step(self, obs: np.ndarray, dt: float, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        action, new_state = self._run(obs, dt, state)[:2]
        return action, new_state

    def step_ood(
        self, obs: np.ndarray, dt: float, state: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``step`` plus the frame's OOD features (None from an export made before them)."""
        outputs = self._run(obs, dt, state)
        return outputs[0], outputs[1], outputs[2] if len(outputs) > 2 else None

    def _run(self, obs: np.ndarray, dt: float, state: np.ndarray) -> tuple[np.ndarray, ...]:
        """Every output the manifest lists, in its order (``OUTPUT_NAMES``)."""
        obs = np.ascontiguousarray(obs, dtype=self.obs_dtype).reshape(self.obs_shape)
        dt_arr = np.array([dt], dtype=np.float32)
        state = np.ascontiguousarray(state, dtype=np.float32)
        if self.backend == "onnxruntime":
            feed = {"obs": obs, "dt": dt_arr, "state": state}
            feed = {k: v for k, v in feed.items() if k in self._onnx_inputs}
            return tuple(self._session.run(None, feed))
        args = (torch.from_numpy(obs), torch.from_numpy(dt_arr), torch.from_numpy(state))
        with torch.inference_mode():
            if self.backend == "torchscript":
                outputs = self._module(*args)
            elif self.has_ood_features:
                outputs = self._policy.step_ood(*args)
            else:
                outputs = self._policy.step(*args)
        return tuple(o.numpy() for o in outputs)


def load_exported(
    manifest: str | Path,
    backend: str = DEFAULT_BACKEND,
    threads: int = DEFAULT_THREADS,
    *,
    trusted_keys: Sequence[str | Path] = (),
) -> EdgePolicy:
    """Verify an export and return its :class:`EdgePolicy` for ``backend``.

    ``manifest`` may also be a ``.safetensors`` checkpoint, run with the eager backend.
    ``trusted_keys``: public key files (PEM); when given, the export must be signed by
    one of them, which is checked before any model file is opened.
    """
    return EdgePolicy(manifest, backend, threads, trusted_keys=trusted_keys)
