"""Small C++ kernels built on first use with `torch.utils.cpp_extension` and called through ctypes.

Each kernel is one `.cpp` file next to this module exposing plain C functions (no Python or torch headers), so it
is built as a plain shared library (`is_python_module=False`) and its functions are called with ctypes. It is
built for this CPU (`-march=native`) with OpenMP: the library links `libgomp.so.1`, the copy torch has already
loaded, so the kernel's threads are torch's threads. Builds are cached under `$PIA_CACHE/native` (default
`~/.cache/pytorch_in_action/native`), one folder per kernel and CPU (a library built with `-march=native` must not
run on another CPU); `cpp_extension` rebuilds when the source or the flags change and locks the folder while it
builds, so a second process never loads a half-written library. Building needs a C++ compiler (`$CXX`, default
`c++`) and `ninja`; without them the loader says so in one line.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
from functools import cache
from pathlib import Path

from pytorch_in_action.data.cache import cache_dir

CFLAGS = ("-O3", "-march=native", "-fopenmp", "-fno-math-errno")


class BuildError(RuntimeError):
    """A native kernel could not be built here (no compiler, no ninja, or the compiler failed); one line."""


def _cpu_signature() -> str:
    """The CPU model and feature flags: a library built with -march=native must not run on another CPU."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine() + platform.processor()
    return "\n".join(sorted({ln for ln in lines if ln.startswith(("model name", "flags", "Features"))}))


def _cpp_extension():
    """`torch.utils.cpp_extension`, imported without its CUDA_HOME notice (these kernels are CPU only)."""
    log = logging.getLogger("torch.utils.cpp_extension")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension
    finally:
        log.setLevel(level)
    return cpp_extension


def _first_error(message: str) -> str:
    """The compiler's first error line out of cpp_extension's whole build log."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower() and not ln.startswith(("FAILED", "ninja:"))]
    return (errors or lines or ["no message"])[0]


def missing_tool() -> str | None:
    """What building a kernel here lacks, in a few words (None when the C++ compiler and ninja are there).

    `ninja` from pip lives next to the Python executable, which is not always on PATH: its folder is added."""
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        return f"a C++ compiler: {compiler!r} was not found (install g++ or set CXX)"
    if shutil.which("ninja") is None:
        try:
            import ninja  # the pip package: a ninja binary and its folder
        except ImportError:
            return "ninja (pip install ninja)"
        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
    return None


@cache
def load(name: str) -> ctypes.CDLL:
    """The compiled library of `native/<name>.cpp`, built on first use (a few seconds) and cached."""
    source = Path(__file__).with_name(f"{name}.cpp")
    if (missing := missing_tool()) is not None:
        raise BuildError(f"building the native kernel {name!r} needs {missing}")
    compiler = os.environ.get("CXX", "c++")
    cpp_extension = _cpp_extension()
    cpu = hashlib.sha256(_cpu_signature().encode()).hexdigest()[:12]
    build = cache_dir() / "native" / f"{name}-{cpu}"
    build.mkdir(parents=True, exist_ok=True)
    try:
        path = cpp_extension.load(f"pia_{name}", [str(source)], extra_cflags=list(CFLAGS),
                                  extra_ldflags=["-fopenmp"], build_directory=str(build),
                                  is_python_module=False, verbose=False)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as err:
        raise BuildError(f"building the native kernel {name!r} with {compiler} failed: {_first_error(str(err))}") \
            from None
    return ctypes.CDLL(str(path))
