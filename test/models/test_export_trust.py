"""Untrusted exports: every bad manifest, file or signature is refused with one line, and
what the manifest points at is never opened when the refusal is about the manifest itself."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from liquid_control.cli import main
from liquid_control.errors import UserError
from liquid_control.models import CoreConfig, FrontendConfig, Policy, PolicyConfig, save_checkpoint
from liquid_control.models import checkpoint as checkpoint_module
from liquid_control.models import manifest as manifest_module
from liquid_control.models.export import export_policy, load_exported
from liquid_control.models.manifest import generate_key_pair, seal_manifest, sha256

TINY = PolicyConfig(
    name="tiny",
    frontend=FrontendConfig(image_height=12, image_width=16, convs=[[4, 3, 2]], features=8),
    core=CoreConfig(kind="cfc", units=8, backbone_units=16),
    action_scale=0.05,
)
LOADING_BACKENDS = ("torchscript", "onnxruntime")


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A tiny image policy's checkpoint and its (unsigned) export."""
    torch.manual_seed(0)
    tmp = tmp_path_factory.mktemp("trust")
    ckpt = save_checkpoint(tmp / "policy.safetensors", Policy(TINY).eval())
    export_policy(ckpt, tmp / "export")
    return tmp


@pytest.fixture
def export(source: Path, tmp_path: Path) -> Path:
    """A private copy of the export, free to damage."""
    return Path(shutil.copytree(source / "export", tmp_path / "export"))


@pytest.fixture
def keys(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("keys")
    good, good_pub = generate_key_pair(tmp / "good")
    _, other_pub = generate_key_pair(tmp / "other")
    return {"private": good, "public": good_pub, "other": other_pub}


@pytest.fixture
def opened(monkeypatch) -> list[str]:
    """Records every attempt to open a model file: TorchScript, ONNX, safetensors or a hash."""
    import onnxruntime

    calls: list[str] = []

    def spy(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return real(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(torch.jit, "load", spy("torch.jit.load", torch.jit.load))
    monkeypatch.setattr(
        onnxruntime, "InferenceSession", spy("InferenceSession", onnxruntime.InferenceSession)
    )
    monkeypatch.setattr(
        checkpoint_module, "safe_open", spy("safe_open", checkpoint_module.safe_open)
    )
    monkeypatch.setattr(manifest_module, "sha256", spy("sha256", manifest_module.sha256))
    return calls


def edit(export: Path, change: Callable[[dict[str, Any]], None], reseal: bool = True) -> None:
    """Change the manifest; ``reseal`` recomputes its digest as a careful forger would."""
    path = export / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(seal_manifest(manifest) if reseal else manifest, indent=2))


def refusal(export: Path | str, backend: str = "torchscript", **kwargs: Any) -> str:
    with pytest.raises(UserError) as info:
        load_exported(export, backend, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_an_intact_export_loads_on_every_backend_and_states_its_digest(export: Path) -> None:
    manifest = json.loads((export / "manifest.json").read_text())
    assert len(manifest["manifest_sha256"]) == 64 and "signature" not in manifest
    for backend in ("torchscript", "onnxruntime", "eager"):
        assert load_exported(export, backend).obs_shape == (1, 12, 16, 3)


@pytest.mark.parametrize("where", ["absolute", "dotdot", "symlink"])
def test_a_file_outside_the_export_is_refused_before_any_file_is_opened(
    export: Path, tmp_path: Path, opened: list[str], where: str
) -> None:
    # The outside file is the real model with its real hash: only the path gives it away.
    outside = tmp_path / "elsewhere" / "step.pt"
    outside.parent.mkdir()
    shutil.copyfile(export / "step.pt", outside)
    if where == "symlink":
        (export / "step.pt").unlink()
        (export / "step.pt").symlink_to(outside)
    else:
        path = str(outside) if where == "absolute" else "../elsewhere/step.pt"
        edit(export, lambda m: m["files"]["torchscript"].update(path=path))
    opened.clear()
    message = refusal(export)
    assert "outside the export" in message or "not a plain relative path" in message
    assert "'torchscript'" in message
    assert opened == []
    assert main(["info", str(export)]) == 2
    assert opened == []


def test_a_system_file_with_its_real_hash_never_reaches_torch_jit_load(
    export: Path, opened: list[str]
) -> None:
    system = Path("/etc/hostname") if Path("/etc/hostname").is_file() else Path("/etc/passwd")
    edit(
        export, lambda m: m["files"]["torchscript"].update(path=str(system), sha256=sha256(system))
    )
    opened.clear()
    assert "not a plain relative path" in refusal(export)
    assert opened == []


def test_an_export_without_a_digest_is_refused_with_a_re_export_message(export: Path) -> None:
    edit(export, lambda m: m.pop("manifest_sha256"), reseal=False)
    message = refusal(export)
    assert "no manifest_sha256" in message and "liquid-control export" in message


@pytest.mark.parametrize("backend", LOADING_BACKENDS)
@pytest.mark.parametrize(
    "change",
    [
        lambda m: m["config"].update(action_scale=5.0),
        lambda m: m["config"]["frontend"].update(image_height=24),
        lambda m: m["files"]["onnx"].update(sha256="0" * 64),
    ],
    ids=["action_scale", "image_height", "file_hash"],
)
def test_an_edited_manifest_is_detected_by_its_digest(
    export: Path, opened: list[str], backend: str, change: Callable[[dict[str, Any]], None]
) -> None:
    edit(export, change, reseal=False)
    opened.clear()
    assert "edited after export" in refusal(export, backend)
    assert opened == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda m: m["config"]["frontend"].update(image_height=1), "cannot be built"),
        (lambda m: m["config"]["frontend"].update(image_height=3000), "between 1 and 2048"),
        (lambda m: m["config"]["frontend"].update(image_height=10**6), "an integer 0..4096"),
        (
            lambda m: m["config"]["frontend"].update(image_width="wide"),
            "frontend.image_width: must be a valid integer",
        ),
        (lambda m: m["config"]["core"].update(units=-3), "core.units: must be greater than 0"),
        (lambda m: m["config"].update(action_scale=None), "action_scale: must be a valid number"),
        (lambda m: m["config"].update(horsepower=3), "horsepower: unknown key"),
        (lambda m: m["config"].update(frontend=[1, 2]), "frontend: must be a dictionary"),
        (lambda m: m["inputs"]["obs"].update(shape=[1, 2, 3]), "inputs 'obs' is [1, 2, 3]"),
    ],
    ids=[
        "too_small",
        "too_large",
        "huge",
        "not_int",
        "negative",
        "not_float",
        "unknown_key",
        "not_dict",
        "spec_vs_config",
    ],
)
def test_an_impossible_config_is_one_line_even_when_resealed(
    export: Path, opened: list[str], change: Callable[[dict[str, Any]], None], expected: str
) -> None:
    edit(export, change)
    opened.clear()
    for backend in ("torchscript", "onnxruntime", "eager"):
        assert expected in refusal(export, backend)
    assert opened == []  # the config is checked before any model file


@pytest.mark.parametrize("backend", ["torchscript", "onnxruntime", "eager"])
def test_a_config_that_disagrees_with_the_model_file_is_refused(export: Path, backend: str) -> None:
    # A consistent, resealed manifest for a 24-pixel-high camera over a 12-pixel model.
    def taller(m: dict[str, Any]) -> None:
        m["config"]["frontend"]["image_height"] = 24
        m["inputs"]["obs"]["shape"] = [1, 24, 16, 3]

    edit(export, taller)
    message = refusal(export, backend)
    expected = {
        "torchscript": "does not run on the inputs its manifest states",
        "onnxruntime": "input 'obs' is [1, 12, 16, 3]",
        "eager": "does not match the manifest's config",
    }[backend]
    assert expected in message


def test_an_action_size_that_disagrees_with_the_torchscript_file_is_refused(export: Path) -> None:
    def wider(m: dict[str, Any]) -> None:
        m["config"]["action_dim"] = 2
        m["outputs"]["action"]["shape"] = [1, 2]

    edit(export, wider)
    assert "returns action [1, 1] float32, the manifest says [1, 2]" in refusal(export)
    assert "output 'action' is [1, 1]" in refusal(export, "onnxruntime")


@pytest.mark.parametrize("backend", LOADING_BACKENDS)
def test_a_damaged_model_file_with_a_matching_hash_is_one_line(export: Path, backend: str) -> None:
    def garbage(m: dict[str, Any]) -> None:
        for entry in m["files"].values():
            if entry["path"] != "policy.safetensors":
                (export / entry["path"]).write_bytes(b"not a model" * 10)
                entry["sha256"] = sha256(export / entry["path"])

    edit(export, garbage)
    assert "cannot be loaded" in refusal(export, backend)


@pytest.mark.parametrize(
    ("name", "damage", "status"),
    [
        ("step.onnx", lambda p: p.write_bytes(p.read_bytes()[:-10]), "sha256 mismatch"),
        ("step.pt", lambda p: p.write_bytes(b"\0" + p.read_bytes()), "sha256 mismatch"),
        ("policy.safetensors", lambda p: p.unlink(), "missing"),
    ],
)
def test_info_names_a_damaged_file_and_exits_2(
    export: Path, capsys, name: str, damage: Callable[[Path], None], status: str
) -> None:
    assert main(["info", str(export)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {f["status"] for f in report["files"].values()} == {"intact"}
    assert report["digest"] == "ok" and report["signature"] == "unsigned"
    assert report["parameters"]["total"] > 0
    damage(export / name)
    assert main(["info", str(export)]) == 2
    out, err = capsys.readouterr()
    files = {f["path"]: f["status"] for f in json.loads(out)["files"].values()}
    assert files[name] == status
    assert [s for s in files.values() if s != "intact"] == [status]
    assert err.count("\n") == 1 and f"{name}: {status}" in err


def test_info_reports_an_edited_manifest_and_an_impossible_config(export: Path, capsys) -> None:
    edit(export, lambda m: m["config"]["frontend"].update(image_height=1), reseal=False)
    assert main(["info", str(export)]) == 2
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert "edited after export" in report["digest"] and report["parameters"] is None
    assert err.count("\n") == 1 and "2 problem(s)" in err and "cannot be built" in err


def test_a_signed_export_loads_only_with_its_key_trusted(
    source: Path, tmp_path: Path, keys: dict[str, Path], opened: list[str], capsys
) -> None:
    signed = tmp_path / "signed"
    ckpt = source / "policy.safetensors"
    cmd = ["export", str(ckpt), "--out", str(signed), "--sign", str(keys["private"])]
    assert main(cmd) == 0
    signature = json.loads((signed / "manifest.json").read_text())["signature"]
    assert signature["algorithm"] == "ed25519"
    for backend in ("torchscript", "onnxruntime", "eager"):
        load_exported(signed, backend, trusted_keys=[keys["public"]])
    # Several trusted keys: any one of them will do.
    load_exported(signed, trusted_keys=[keys["other"], keys["public"]])
    capsys.readouterr()
    assert main(["info", str(signed), "--trusted-key", str(keys["public"])]) == 0
    assert json.loads(capsys.readouterr().out)["signature"].startswith("signed by trusted key")

    opened.clear()
    assert "not among the trusted keys" in refusal(signed, trusted_keys=[keys["other"]])
    assert opened == []
    assert main(["info", str(signed), "--trusted-key", str(keys["other"])]) == 2


def test_an_unsigned_export_is_refused_when_keys_are_trusted(
    source: Path, export: Path, keys: dict[str, Path], opened: list[str]
) -> None:
    opened.clear()
    for backend in ("torchscript", "onnxruntime", "eager"):
        message = refusal(export, backend, trusted_keys=[keys["public"]])
        assert "not signed" in message and "--sign" in message
    checkpoint = source / "policy.safetensors"
    assert "carries no signature" in refusal(checkpoint, "eager", trusted_keys=[keys["public"]])
    assert opened == []


def test_a_signed_export_edited_and_resealed_fails_its_signature(
    source: Path, tmp_path: Path, keys: dict[str, Path], opened: list[str]
) -> None:
    signed = export_policy(source / "policy.safetensors", tmp_path / "s", sign_key=keys["private"])
    # seal_manifest without a key drops the signature; a forger copies the old one back.
    old = json.loads(signed.read_text())["signature"]
    edit(signed.parent, lambda m: m["config"].update(action_scale=5.0))
    edit(signed.parent, lambda m: m.update(signature=old), reseal=False)
    opened.clear()
    assert "does not verify" in refusal(signed.parent)
    assert "does not verify" in refusal(signed.parent, trusted_keys=[keys["public"]])
    assert opened == []


def test_bad_key_files_are_one_line(
    source: Path, export: Path, tmp_path: Path, keys: dict[str, Path]
) -> None:
    assert "not a PEM public key" in refusal(export, trusted_keys=[keys["private"]])
    assert "cannot be read" in refusal(export, trusted_keys=[tmp_path / "nope.pub"])
    with pytest.raises(UserError, match="not a PEM private key"):
        export_policy(source / "policy.safetensors", tmp_path / "x", sign_key=keys["public"])
    assert not (tmp_path / "x").exists()
    with pytest.raises(UserError, match="already exists"):
        generate_key_pair(keys["private"])
    assert keys["private"].stat().st_mode & 0o077 == 0  # the private key is the owner's alone


def test_eval_and_drive_refuse_an_untrusted_export_before_running(
    export: Path, keys: dict[str, Path], capsys
) -> None:
    trusted = ["--trusted-key", str(keys["public"])]
    assert main(["eval", str(export), "--episodes", "1", "--no-video", *trusted]) == 2
    assert "not signed" in capsys.readouterr().err
    assert main(["drive", "--model", str(export), *trusted]) == 2
    assert "not signed" in capsys.readouterr().err


def test_keygen_writes_a_pair_that_signs_and_never_replaces_a_key(
    source: Path, tmp_path: Path, capsys
) -> None:
    key = tmp_path / "keys" / "robot"
    assert main(["keygen", str(key)]) == 0
    assert "robot.pub" in capsys.readouterr().out
    signed = export_policy(source / "policy.safetensors", tmp_path / "s", sign_key=key)
    load_exported(signed, "onnxruntime", trusted_keys=[f"{key}.pub"])
    before = key.read_bytes()
    assert main(["keygen", str(key)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert key.read_bytes() == before
