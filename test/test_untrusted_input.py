"""Property tests on input a user hands in: image messages, perturbation specs, and rosbags
truncated or corrupted anywhere. Each input gives a result or a one-line UserError (or the
decoder's own ImageError), never another exception, and a refused bag conversion leaves
no dataset behind. (The YAML config schemas have theirs in test_configs.py.)"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from liquid_control.errors import UserError

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- image decoding -------------------------------------------------------------------------

ENCODINGS = ["rgb8", "bgr8", "rgba8", "bgra8", "mono8", "RGB8", "yuv422", "16UC1", ""]


@st.composite
def image_messages(draw: st.DrawFn) -> SimpleNamespace:
    """Mostly consistent headers (so decoding is reached) with every field sometimes off."""
    encoding = draw(st.sampled_from(ENCODINGS))
    height = draw(st.integers(-2, 12))
    width = draw(st.integers(-2, 12))
    channels = draw(st.sampled_from([1, 3, 4]))
    step = max(width, 0) * channels + draw(st.integers(-3, 4))
    size = max(step, 0) * max(height, 0) + draw(st.sampled_from([0, 0, 0, -1, 1, 7]))
    data = draw(st.binary(min_size=max(size, 0), max_size=max(size, 0)))
    return SimpleNamespace(encoding=encoding, height=height, width=width, step=step, data=data)


@FAST
@given(image_messages())
def test_image_decoding_gives_rgb_or_an_image_error(msg: SimpleNamespace) -> None:
    from liquid_control.image import ImageError, image_to_rgb

    try:
        rgb = image_to_rgb(msg)
    except ImageError as e:
        assert "\n" not in str(e)
        return
    assert rgb.dtype == np.uint8 and rgb.shape == (msg.height, msg.width, 3)
    assert rgb.flags["C_CONTIGUOUS"] and rgb.flags["OWNDATA"]


# -- perturbation specs ---------------------------------------------------------------------

spec_parts = st.one_of(
    st.sampled_from(["noise", "drop", "latency", "brightness", "ood", "blur", ""]),
    st.sampled_from(["=", "==", ",", " "]),
    st.sampled_from(["0.2", "-1", "1", "0", "1e9", "nan", "inf", "3", "snow", "x", ""]),
    st.text(max_size=3),
)


@FAST
@given(st.lists(spec_parts, max_size=8).map("".join))
def test_perturbation_specs_give_a_wrapped_env_or_one_user_error_line(spec: str) -> None:
    from data.synthetic import TinyImageEnv

    from liquid_control.envs.perturb import make_perturbed, parse_spec

    try:
        values = parse_spec(spec)
        env = make_perturbed(TinyImageEnv(max_steps=3), spec)
    except UserError as e:
        assert "\n" not in str(e)
        return
    assert all(np.isfinite(v) for v in values.values() if isinstance(v, float))
    obs, _ = env.reset(seed=0)
    obs, *_ = env.step(np.zeros(1, np.float32))
    assert obs["image"].dtype == np.uint8 and float(obs["dt"][0]) > 0


# -- rosbags truncated or corrupted ---------------------------------------------------------

_BAGS: dict[str, Path] = {}


def _clean_bag(storage: str) -> Path:
    """A small recorded drive (two episodes) in ``storage``, written once per session."""
    if storage not in _BAGS:
        from data.test_bags import drive_times, sim_drive, write_bag

        root = Path(tempfile.mkdtemp(prefix="lc-bags-"))
        atexit.register(shutil.rmtree, root, True)
        _BAGS[storage] = write_bag(root / "drive", sim_drive(drive_times(2, 8)), storage)
    return _BAGS[storage]


@contextmanager
def _minari_root() -> Iterator[Path]:
    old = os.environ.get("MINARI_DATASETS_PATH")
    root = Path(tempfile.mkdtemp(prefix="lc-minari-"))
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield root
    finally:
        if old is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = old
        shutil.rmtree(root, ignore_errors=True)


@st.composite
def damaged_bags(draw: st.DrawFn) -> tuple[str, str, str, float, bytes]:
    """(storage, which file, how, where as a fraction of the file, bytes written there)."""
    storage = draw(st.sampled_from(["mcap", "sqlite3"]))
    which = draw(st.sampled_from(["data", "data", "data", "metadata.yaml"]))
    how = draw(st.sampled_from(["truncate", "overwrite", "overwrite"]))
    where = draw(st.floats(0.0, 1.0))
    garbage = draw(st.binary(min_size=1, max_size=64))
    return storage, which, how, where, garbage


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_bags())
def test_a_damaged_bag_converts_or_is_refused_leaving_no_dataset(
    case: tuple[str, str, str, float, bytes],
) -> None:
    from data.test_bags import CMD, IMAGE

    from liquid_control.data import load_episodes
    from liquid_control.data.bags import bag2minari

    storage, which, how, where, garbage = case
    with tempfile.TemporaryDirectory() as work, _minari_root() as root:
        bag = Path(work) / "drive"
        shutil.copytree(_clean_bag(storage), bag)
        target = bag / "metadata.yaml"
        if which == "data":
            (target,) = [p for p in bag.iterdir() if p.suffix in (".mcap", ".db3")]
        content = target.read_bytes()
        at = int(where * len(content))
        if how == "truncate":
            content = content[:at]
        else:
            content = content[:at] + garbage + content[at + len(garbage) :]
        target.write_bytes(content)
        dataset = "liquid_control/lane-damaged-v0"
        try:
            summary = bag2minari([bag], IMAGE, CMD, dataset, image_size=None)
        except UserError as e:
            assert "\n" not in str(e)
            assert not (root / "liquid_control").exists() or not any(
                (root / "liquid_control").iterdir()
            ), "a refused conversion left a dataset behind"
            return
        episodes = load_episodes(dataset)
        assert summary["frames"] == sum(len(e) for e in episodes) > 0
        assert all(float(e.dt_s.min()) > 0 for e in episodes)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_the_undamaged_bags_of_the_property_test_convert(storage: str) -> None:
    """The damage above is what makes a bag fail, not the bag: the clean one converts."""
    from data.test_bags import CMD, IMAGE

    from liquid_control.data.bags import bag2minari

    with _minari_root():
        summary = bag2minari([_clean_bag(storage)], IMAGE, CMD, "liquid_control/lane-clean-v0")
    assert summary["episodes"] == 2 and summary["frames"] == 16
