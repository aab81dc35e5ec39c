"""Small C++ kernels compiled on first use with the machine's C++ compiler and loaded with ctypes.

Each kernel is one `.cpp` file next to this module exposing plain C functions. It is built for this CPU
(`-march=native`) with OpenMP: the library links `libgomp.so.1`, which is the copy torch has already loaded, so
the kernel's threads are torch's threads. Builds are cached under `$PIA_CACHE/native` (default
`~/.cache/pytorch_in_action/native`), keyed by the source, the compiler, its flags and the CPU, and written to a
temporary file first, then renamed: a second process never loads a half-written library.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

from pytorch_in_action.data.cache import cache_dir
from pytorch_in_action.errors import PiaError

FLAGS = ("-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-fno-math-errno", "-std=c++17")


def _cpu_signature() -> str:
    """The CPU model and feature flags: a library built with -march=native must not run on another CPU."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.machine() + platform.processor()
    return "\n".join(sorted({ln for ln in lines if ln.startswith(("model name", "flags", "Features"))}))


@cache
def load(name: str) -> ctypes.CDLL:
    """The compiled library of `native/<name>.cpp`, built on first use (a few seconds) and cached."""
    source = Path(__file__).with_name(f"{name}.cpp")
    compiler = os.environ.get("CXX", "g++")
    path = shutil.which(compiler)
    if path is None:
        raise PiaError(f"building the native kernel {name!r} needs a C++ compiler: {compiler!r} was not found "
                       "(install g++ or set CXX)")
    version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256("\0".join([source.read_text(), path, version, *FLAGS, _cpu_signature()]).encode())
    target = cache_dir() / "native" / f"{name}-{key.hexdigest()[:16]}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        try:
            done = subprocess.run([path, *FLAGS, str(source), "-o", tmp], capture_output=True, text=True)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no message"])[-1]
                raise PiaError(f"building the native kernel {name!r} with {compiler} failed: {last}")
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return ctypes.CDLL(str(target))
