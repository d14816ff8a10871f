"""Export manifests: what an export directory holds, and whether to believe it.

An export is a directory whose ``manifest.json`` records the policy config, the
input/output spec and every file with its sha256. This module owns reading that
manifest and deciding whether it can be trusted, all before any model file is
opened: every file entry must be a plain relative path that stays inside the
export directory once symlinks are resolved; one digest (sha256 over the
canonical JSON of every other field) covers the config, the I/O spec and all
file hashes, so an edited manifest is detected; an optional Ed25519 signature of
that digest ties the export to a key the user trusts; and the config must be
buildable and describe the I/O the manifest states. Once a backend has loaded a
model file, :func:`check_model_io` compares the file's real inputs and outputs
with the manifest. :func:`inspect_export` runs every check without stopping at
the first failure, for ``liquid-control info``.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn

import numpy as np
import torch
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from liquid_control.atomic import atomic_path
from liquid_control.errors import UserError
from liquid_control.models.policy import Policy, PolicyConfig

MANIFEST_FORMAT = "liquid_control.export/1"
DIGEST_FIELD = "manifest_sha256"
SIGNATURE_FIELD = "signature"
REQUIRED_FIELDS = ("config", "inputs", "outputs", "files")
# The largest frame side a manifest may ask for: far beyond any camera an edge policy is fed,
# small enough that building the policy to check the config cannot exhaust memory.
MAX_IMAGE_SIDE = 2048
# Bound on every integer in a config but seeds (neurons, features, layers, kernel sizes).
MAX_CONFIG_INT = 4096
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_ONNX_TYPES = {"float32": "tensor(float)", "uint8": "tensor(uint8)"}
OOD_OUTPUT = "ood_features"
# The step's outputs, in the order every backend returns them.
OUTPUT_NAMES = ("action", "state_out", OOD_OUTPUT)

StepFn = Callable[[np.ndarray, float, np.ndarray], tuple[np.ndarray, ...]]


def sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def io_spec(policy: Policy) -> dict[str, Any]:
    """The manifest's ``inputs`` and ``outputs``: names, shapes, dtypes, units (batch 1)."""
    fe = policy.cfg.frontend
    if fe.kind == "vector":
        obs = {
            "shape": [1, fe.obs_dim],
            "dtype": "float32",
            "normalisation": "mean/std stored in the model",
        }
    else:
        obs = {
            "shape": [1, fe.image_height, fe.image_width, 3],
            "dtype": "uint8",
            "encoding": "rgb8",
            "layout": "NHWC",
            "resize": "resize the camera frame to height x width (cv2.INTER_AREA)",
            "normalisation": "per-frame standardisation inside the model",
        }
    return {
        "inputs": {
            "obs": obs,
            "dt": {"shape": [1], "dtype": "float32", "unit": "s"},
            "state": {"shape": [1, policy.state_size], "dtype": "float32"},
        },
        "outputs": {
            "action": {"shape": [1, policy.cfg.action_dim], "dtype": "float32"},
            "state_out": {"shape": [1, policy.state_size], "dtype": "float32"},
            # What the OOD monitor scores (liquid_control.models.ood); exports made before
            # it existed lack this output and run without a monitor.
            OOD_OUTPUT: {
                "shape": [1, policy.ood_features],
                "dtype": "float32",
                "content": "the standardised observation"
                if fe.kind == "vector"
                else "rgb mean and std of the frame (/255), then the core's input",
            },
        },
    }


def manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces) of all but the digest/signature."""
    body = {k: v for k, v in manifest.items() if k not in (DIGEST_FIELD, SIGNATURE_FIELD)}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _signed_message(digest: str) -> bytes:
    # The format name keeps a signature on a manifest from meaning anything elsewhere.
    return f"{MANIFEST_FORMAT} manifest_sha256 {digest}".encode()


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """A short name for a public key: the first 16 hex digits of the sha256 of its raw bytes."""
    return "ed25519:" + hashlib.sha256(_raw_public(key)).hexdigest()[:16]


def seal_manifest(
    manifest: dict[str, Any], signing_key: Ed25519PrivateKey | None = None
) -> dict[str, Any]:
    """Return ``manifest`` with its digest and, given a key, an Ed25519 signature of it."""
    sealed = {k: v for k, v in manifest.items() if k not in (DIGEST_FIELD, SIGNATURE_FIELD)}
    digest = manifest_digest(sealed)
    sealed[DIGEST_FIELD] = digest
    if signing_key is not None:
        sealed[SIGNATURE_FIELD] = {
            "algorithm": "ed25519",
            "public_key": base64.b64encode(_raw_public(signing_key.public_key())).decode(),
            "value": base64.b64encode(signing_key.sign(_signed_message(digest))).decode(),
        }
    return sealed


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise UserError(f"{what} {path} cannot be read ({e.strerror or e})") from None


def load_public_keys(paths: Sequence[str | Path]) -> list[Ed25519PublicKey]:
    """Read trusted public keys (PEM files as written by ``liquid-control keygen``)."""
    keys = []
    for path in paths:
        data = _read_key_file(Path(path), "trusted key")
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm):
            raise UserError(
                f"trusted key {path} is not a PEM public key; pass the .pub file from "
                "`liquid-control keygen`"
            ) from None
        if not isinstance(key, Ed25519PublicKey):
            raise UserError(f"trusted key {path} is not an Ed25519 key; only Ed25519 is supported")
        keys.append(key)
    return keys


def load_signing_key(path: str | Path) -> Ed25519PrivateKey:
    """Read an unencrypted Ed25519 private key (PEM, as written by ``liquid-control keygen``)."""
    data = _read_key_file(Path(path), "signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise UserError(
            f"signing key {path} is encrypted; use an unencrypted key from `liquid-control keygen`"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise UserError(
            f"signing key {path} is not a PEM private key; pass the private key file from "
            "`liquid-control keygen` (not the .pub)"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UserError(f"signing key {path} is not an Ed25519 key; only Ed25519 is supported")
    return key


def generate_key_pair(out: str | Path) -> tuple[Path, Path]:
    """Write a new Ed25519 private key to ``out`` (mode 0600) and its public key to ``out.pub``."""
    private_path = Path(out)
    public_path = private_path.with_name(private_path.name + ".pub")
    for path in (private_path, public_path):
        if path.exists():
            raise UserError(f"{path} already exists; choose another name (keys are never replaced)")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with atomic_path(private_path, mode=0o600) as tmp:  # the owner's alone, from creation on
        tmp.write_bytes(private_pem)
    with atomic_path(public_path) as tmp:
        tmp.write_bytes(public_pem)
        tmp.chmod(0o644)
    return private_path, public_path


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number JSON allows")


def _check_file_entry(root: Path, name: str, entry: Any, where: Path) -> None:
    """Refuse a file entry without a sha256 or whose path is not a plain path inside ``root``."""
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str) or not entry["path"]:
        raise UserError(f"model manifest {where}: file entry {name!r} has no path; re-export it")
    if not isinstance(entry.get("sha256"), str) or not _SHA256_HEX.fullmatch(entry["sha256"]):
        raise UserError(f"model manifest {where}: file entry {name!r} has no valid sha256")
    rel = PurePosixPath(entry["path"])
    outside = f"model manifest {where}: file entry {name!r} ({entry['path']!r})"
    if rel.is_absolute() or ".." in rel.parts or "\\" in entry["path"]:
        raise UserError(f"{outside} is not a plain relative path inside the export; refused")
    real_root = root.resolve()
    # Resolving follows symlinks, so a link inside the folder that points out is caught too.
    path = (real_root / rel).resolve()
    if path == real_root or not path.is_relative_to(real_root):
        raise UserError(f"{outside} resolves outside the export directory; refused")


def parse_manifest(path: str | Path) -> tuple[dict[str, Any], Path]:
    """Parse a manifest (a file or its directory) and check its structure and file paths.

    Returns the manifest and the manifest file's path. No model file is opened.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.json"
    if not path.is_file():
        raise UserError(f"model manifest {path} does not exist; run `liquid-control export`")
    try:
        manifest = json.loads(path.read_text(), parse_constant=_reject_constant)
    except (OSError, ValueError) as e:
        raise UserError(f"model manifest {path} is not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise UserError(f"{path} is not a liquid_control export manifest")
    for key in REQUIRED_FIELDS:
        if not isinstance(manifest.get(key), dict):
            raise UserError(f"model manifest {path} lacks '{key}'; re-export it")
    for name, entry in manifest["files"].items():
        _check_file_entry(path.parent, name, entry, path)
    return manifest, path


def check_digest(manifest: dict[str, Any], where: Path) -> None:
    """Refuse a manifest without its digest or whose fields no longer match it."""
    recorded = manifest.get(DIGEST_FIELD)
    if recorded is None:
        raise UserError(
            f"model manifest {where} has no {DIGEST_FIELD} (exported before manifests were "
            "sealed); re-export it with `liquid-control export CHECKPOINT`"
        )
    if recorded != manifest_digest(manifest):
        raise UserError(
            f"model manifest {where} was edited after export (config, I/O spec or file hashes "
            f"no longer match its {DIGEST_FIELD}); re-export it"
        )


def check_signature(
    manifest: dict[str, Any], trusted: Sequence[Ed25519PublicKey], where: Path
) -> str:
    """Verify the manifest's signature; return who signed it (or ``"unsigned"``).

    A signature present must be valid. With ``trusted`` keys the export must also be
    signed, by one of them.
    """
    signature = manifest.get(SIGNATURE_FIELD)
    if signature is None:
        if trusted:
            raise UserError(
                f"model manifest {where} is not signed, but trusted keys were given; sign it "
                "with `liquid-control export CHECKPOINT --sign KEY`"
            )
        return "unsigned"
    try:
        if signature["algorithm"] != "ed25519":
            raise ValueError(f"algorithm {signature['algorithm']!r}")
        raw = base64.b64decode(signature["public_key"], validate=True)
        signer = Ed25519PublicKey.from_public_bytes(raw)
        value = base64.b64decode(signature["value"], validate=True)
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"model manifest {where}: malformed signature ({e}); refused") from None
    try:
        signer.verify(value, _signed_message(manifest_digest(manifest)))
    except InvalidSignature:
        raise UserError(
            f"model manifest {where} has a signature that does not verify; it was changed "
            "after signing: refused"
        ) from None
    if not trusted:
        return f"signed by {key_id(signer)} (valid; no trusted keys given to check the signer)"
    if _raw_public(signer) not in {_raw_public(k) for k in trusted}:
        raise UserError(
            f"model manifest {where} is signed by {key_id(signer)}, which is not among the "
            "trusted keys; refused"
        )
    return f"signed by trusted key {key_id(signer)}"


def _check_config_values(values: Any, where: Path, prefix: str = "") -> None:
    """Every value of a config dataclass has its default's type and a sane size, so that
    building the policy cannot fail obscurely or ask for an absurd amount of memory."""
    defaults = type(values)()
    for f in dataclasses.fields(values):
        value, default = getattr(values, f.name), getattr(defaults, f.name)
        if dataclasses.is_dataclass(default):
            _check_config_values(value, where, f"{prefix}{f.name}.")
            continue
        # Seeds are arbitrary numbers (numpy takes 32 bits); every other integer is a size.
        limit = 2**32 - 1 if f.name.endswith("seed") else MAX_CONFIG_INT
        if isinstance(default, str):
            ok, expected = isinstance(value, str), "a string"
        elif isinstance(default, int):
            ok, expected = type(value) is int and 0 <= value <= limit, f"an integer 0..{limit}"
        elif isinstance(default, float):
            ok, expected = type(value) in (int, float) and math.isfinite(value), "a finite number"
        else:  # conv layers
            expected = f"[out_channels, kernel, stride] rows of integers 1..{limit}"
            ok = isinstance(value, list) and all(
                isinstance(row, list)
                and len(row) == 3
                and all(type(v) is int and 0 < v <= limit for v in row)
                for row in value
            )
        if not ok:
            raise UserError(
                f"model manifest {where}: config {prefix}{f.name}={value!r} is invalid "
                f"(expected {expected})"
            )


def policy_from_manifest(manifest: dict[str, Any], where: Path) -> Policy:
    """Build the (untrained) policy the config describes; refuse an impossible config or one
    whose shapes are not the manifest's I/O spec. The weights are not loaded."""
    data = manifest["config"]
    try:
        cfg = PolicyConfig.from_dict(data)  # the typed schema: one line naming the key path
    except UserError as e:
        raise UserError(f"model manifest {where}: {e}; re-export it") from None
    _check_config_values(cfg, where)
    fe = cfg.frontend
    if fe.kind != "vector" and not (
        0 < fe.image_height <= MAX_IMAGE_SIDE and 0 < fe.image_width <= MAX_IMAGE_SIDE
    ):
        raise UserError(
            f"model manifest {where}: image size {fe.image_height}x{fe.image_width} is not "
            f"between 1 and {MAX_IMAGE_SIDE} pixels a side"
        )
    try:
        policy = Policy(cfg)
    except (ValueError, TypeError, RuntimeError, IndexError, KeyError, AssertionError) as e:
        # ncps asserts on impossible wirings; whatever the library says, the config is at fault.
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"model manifest {where}: its config cannot be built ({first})") from None
    expected = io_spec(policy)
    if OOD_OUTPUT not in manifest["outputs"]:
        del expected["outputs"][OOD_OUTPUT]  # an export made before the OOD monitor
        if "ood" in manifest["files"]:
            raise UserError(
                f"model manifest {where} has OOD statistics but its model returns no "
                f"{OOD_OUTPUT}; recalibrate with `liquid-control ood-calibrate`"
            )
    for section in ("inputs", "outputs"):
        for name, spec in expected[section].items():
            stated = manifest[section].get(name)
            stated_shape = stated.get("shape") if isinstance(stated, dict) else None
            stated_dtype = stated.get("dtype") if isinstance(stated, dict) else None
            if (stated_shape, stated_dtype) != (spec["shape"], spec["dtype"]):
                raise UserError(
                    f"model manifest {where}: {section} {name!r} is {stated_shape} "
                    f"{stated_dtype} but the config gives {spec['shape']} {spec['dtype']}"
                )
    return policy


def read_manifest(
    path: str | Path, trusted_keys: Sequence[str | Path] = ()
) -> tuple[dict[str, Any], Path]:
    """Parse and verify a manifest (a file or its directory); return it and its directory.

    Checked in order, before any model file is opened: paths inside the export, the
    digest, the signature (required, by one of ``trusted_keys``, when any are given),
    and the config against the I/O spec. Each refusal is a one-line :class:`UserError`.
    """
    trusted = load_public_keys(trusted_keys)
    manifest, where = parse_manifest(path)
    check_digest(manifest, where)
    check_signature(manifest, trusted, where)
    policy_from_manifest(manifest, where)
    return manifest, where.parent


def file_status(manifest: dict[str, Any], root: Path, name: str) -> tuple[Path | None, str]:
    """(path, status) of a file entry; status is ``intact``, ``missing``, ``not in the
    export`` or ``sha256 mismatch``."""
    entry = manifest["files"].get(name)
    if entry is None:
        return None, "not in the export"
    path = root / entry["path"]
    if not path.is_file():
        return path, "missing"
    return path, "intact" if sha256(path) == entry["sha256"] else "sha256 mismatch"


def verified_file(manifest: dict[str, Any], root: Path, name: str) -> Path:
    """The path of file ``name`` of an export, after checking it against its sha256."""
    path, status = file_status(manifest, root, name)
    if path is None:
        raise UserError(f"the export in {root} has no {name} file; re-export with it")
    if status == "missing":
        raise UserError(f"model file {path} named in the manifest is missing")
    if status != "intact":
        raise UserError(f"model file {path} does not match its sha256 in the manifest")
    return path


def check_onnx_io(session: Any, manifest: dict[str, Any], where: Path | str) -> None:
    """Compare an onnxruntime session's input/output names, shapes and types with the manifest.

    An input the manifest lists may be missing from the model (the exporter drops inputs a
    model never reads, such as ``dt`` of the feed-forward baseline); nothing else may differ.
    """
    for section, args in (("inputs", session.get_inputs()), ("outputs", session.get_outputs())):
        stated = manifest[section]
        names = [a.name for a in args]
        if section == "outputs" and sorted(names) != sorted(stated):
            raise UserError(
                f"model {where} has outputs {names}, the manifest {list(stated)}; re-export it"
            )
        for arg in args:
            spec = stated.get(arg.name)
            if spec is None:
                raise UserError(
                    f"model {where} has {section[:-1]} {arg.name!r}, which the manifest "
                    "does not list; re-export it"
                )
            if list(arg.shape) != spec["shape"] or arg.type != _ONNX_TYPES.get(spec["dtype"]):
                raise UserError(
                    f"model {where}: {section[:-1]} {arg.name!r} is {list(arg.shape)} "
                    f"{arg.type}, the manifest says {spec['shape']} {spec['dtype']}; re-export it"
                )


@contextlib.contextmanager
def model_errors_refused(message: str, also: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """Turn a model runtime's rejection of a file or of its inputs into a one-line UserError
    starting with ``message``. torch raises RuntimeError or torch.jit.Error, onnxruntime
    exception types of its own with no common base; any other exception stays a bug."""
    try:
        yield
    except Exception as e:
        runtime = isinstance(e, RuntimeError | torch.jit.Error)
        if not (runtime or type(e).__module__.startswith("onnxruntime") or isinstance(e, also)):
            raise
        text = str(e).strip()
        first = text.splitlines()[0] if text else type(e).__name__
        raise UserError(f"{message} ({first}); re-export it") from None


def check_model_io(step: StepFn, manifest: dict[str, Any], where: Path | str) -> None:
    """Run one step on zeros shaped as the manifest's inputs and compare what comes out with
    its outputs, so a model file that disagrees with its manifest is refused at load time."""
    inputs, outputs = manifest["inputs"], manifest["outputs"]
    obs = np.zeros(inputs["obs"]["shape"], dtype=inputs["obs"]["dtype"])
    state = np.zeros(inputs["state"]["shape"], dtype=np.float32)
    # ValueError/TypeError: the model returned something other than (action, state).
    names = [n for n in OUTPUT_NAMES if n in outputs]
    with model_errors_refused(
        f"model {where} does not run on the inputs its manifest states", (ValueError, TypeError)
    ):
        result = step(obs, 0.05, state)
        if len(result) != len(names):
            raise ValueError(f"it returns {len(result)} outputs, the manifest lists {names}")
    for name, value in zip(names, result, strict=True):
        shape, dtype = list(np.shape(value)), str(np.asarray(value).dtype)
        if (shape, dtype) != (outputs[name]["shape"], outputs[name]["dtype"]):
            raise UserError(
                f"model {where} returns {name} {shape} {dtype}, the manifest says "
                f"{outputs[name]['shape']} {outputs[name]['dtype']}; re-export it"
            )


def _attempt(check: Callable[[], Any]) -> tuple[Any, str | None]:
    try:
        return check(), None
    except UserError as e:
        return None, str(e)


def inspect_export(
    path: str | Path, trusted_keys: Sequence[str | Path] = ()
) -> tuple[dict[str, Any], Policy | None, list[str]]:
    """Every check of an export without stopping at the first failure (``liquid-control info``).

    Returns a report (digest, signature and per-file status), the policy the config
    describes (None when it cannot be built) and the problems found. A manifest that
    cannot be parsed, or names a file outside its directory, is refused outright. No
    model file is loaded or run: files are only hashed.
    """
    trusted = load_public_keys(trusted_keys)
    manifest, where = parse_manifest(path)
    problems: list[str] = []
    _, digest_problem = _attempt(lambda: check_digest(manifest, where))
    signed, signature_problem = _attempt(lambda: check_signature(manifest, trusted, where))
    policy, config_problem = _attempt(lambda: policy_from_manifest(manifest, where))
    problems += [p for p in (digest_problem, signature_problem, config_problem) if p]
    files = {}
    for name, entry in manifest["files"].items():
        _, status = file_status(manifest, where.parent, name)
        files[name] = {"path": entry["path"], "status": status}
        if status != "intact":
            problems.append(f"{entry['path']}: {status}")
    report = {
        "manifest": str(where),
        "digest": "ok" if digest_problem is None else digest_problem,
        "signature": signed if signature_problem is None else signature_problem,
        "files": files,
        "config": manifest["config"],
    }
    return report, policy, problems
