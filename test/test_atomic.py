"""Atomic writes leave files and directories with the modes a plain write would."""

from __future__ import annotations

import os
import stat

import pytest

from liquid_control.atomic import atomic_dir, atomic_path


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_atomic_files_and_directories_follow_the_umask(tmp_path, umask_022) -> None:
    with atomic_path(tmp_path / "result.json") as tmp:
        tmp.write_text("{}")
    with atomic_dir(tmp_path / "export") as tmp:
        (tmp / "manifest.json").write_text("{}")
    assert stat.S_IMODE((tmp_path / "result.json").stat().st_mode) == 0o644
    # mkdtemp alone gives 0700: another user's node could not read the export.
    assert stat.S_IMODE((tmp_path / "export").stat().st_mode) == 0o755
    assert (tmp_path / "export" / "manifest.json").read_text() == "{}"
