"""Builds the C++ training kernels (``csrc/liquid_kernels.cpp``) into ``_native/``.

``python -m liquid_control.models._build`` is run by ``scripts/setup.sh``; it compiles with
``torch.utils.cpp_extension`` (g++ and ninja) and is a no-op when the library for this
source, torch version and CPU is already there. The library's name is a digest of all three,
so an edited source or another torch is never loaded stale: :mod:`liquid_control.models.native`
looks for exactly that name and otherwise runs the Python passes.
"""

from __future__ import annotations

import hashlib
import platform
import shutil
import sys
import time
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("csrc") / "liquid_kernels.cpp"
BUILD_ROOT = Path(__file__).with_name("_native")


def openmp_flags() -> list[str]:
    """``at::parallel_for`` is a header template: without OpenMP it compiles to a serial loop.
    The library then binds to the OpenMP runtime torch has already loaded."""
    return ["-fopenmp"] if torch.backends.openmp.is_available() else []


def compile_flags() -> list[str]:
    """-O3, C++20, OpenMP and the vector ISA of ATen's ``Vectorized`` that torch itself uses on
    this CPU (AVX-512 or AVX2 + FMA); other CPUs get its portable form."""
    flags = ["-O3", "-std=c++20", *openmp_flags()]
    capability = torch.backends.cpu.get_cpu_capability()
    if platform.machine() not in ("x86_64", "AMD64"):
        capability = "DEFAULT"
    if capability == "AVX512":
        isa = ["-mavx512f", "-mavx512dq", "-mavx512vl", "-mavx512bw", "-mfma"]
        return flags + isa + ["-DCPU_CAPABILITY_AVX512", "-DCPU_CAPABILITY=lc_avx512"]
    if capability == "AVX2":
        return flags + ["-mavx2", "-mfma", "-DCPU_CAPABILITY_AVX2", "-DCPU_CAPABILITY=lc_avx2"]
    return flags + ["-DCPU_CAPABILITY=lc_default"]


def library_name() -> str:
    digest = hashlib.sha256(SOURCE.read_bytes())
    digest.update(" ".join([torch.__version__, *compile_flags()]).encode())
    return f"liquid_kernels_{digest.hexdigest()[:16]}"


def library_path() -> Path:
    return BUILD_ROOT / library_name() / f"{library_name()}.so"


def build(verbose: bool = False) -> Path:
    """Compile the library (unless already built) and return its path."""
    path = library_path()
    if path.exists():
        return path
    from torch.utils.cpp_extension import load

    path.parent.mkdir(parents=True, exist_ok=True)
    load(
        name=library_name(),
        sources=[str(SOURCE)],
        extra_cflags=compile_flags(),
        extra_ldflags=openmp_flags(),
        build_directory=str(path.parent),
        is_python_module=False,
        verbose=verbose,
    )
    # Older builds (other sources or torch versions) are never loaded again.
    for old in BUILD_ROOT.iterdir():
        if old.is_dir() and old.name != library_name():
            shutil.rmtree(old, ignore_errors=True)
    return path


def main() -> int:
    start = time.perf_counter()
    try:
        path = build(verbose="-v" in sys.argv)
    except Exception as e:  # noqa: BLE001 - any build failure leaves the Python passes in use
        # The exception holds the whole compiler log: its first line says what failed, its
        # last one usually why.
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        lines = lines or [type(e).__name__]
        causes = [line for line in lines[1:] if not line.startswith(("ninja:", "["))]
        why = lines[0].split(": [")[0] + (f": {causes[-1]}" if causes else "")
        print(f"C++ training kernels not built ({why}); the Python passes will run")
        return 1
    print(f"C++ training kernels: {path} ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
