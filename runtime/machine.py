"""The machine fable runs on, described once: for tune-cache keys and for benchmark rows.

Everything is read from files (`/proc`, `/sys`) under a root that tests can replace, and from
`vcgencmd` where a Raspberry Pi has it; what cannot be read is None, never an error.
"""

from __future__ import annotations

import os
import platform
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .backend import BACKENDS, backend_version

# The instruction sets that decide which kernels onnxruntime and numpy run: integer dot products
# (x86 VNNI, AMX; ARM's asimddp and i8mm) make int8 and int4 products fast.
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimd", "asimddp", "i8mm", "sve")

Runner = Callable[[list[str]], str | None]


def run_quietly(command: list[str]) -> str | None:
    """A command's standard output, or None when it is missing or fails."""
    if shutil.which(command[0]) is None:
        return None
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _cpuinfo(root: Path) -> dict[str, str]:
    """The first value of each field of /proc/cpuinfo."""
    fields: dict[str, str] = {}
    for line in (_read(root / "proc" / "cpuinfo") or "").splitlines():
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), value.strip())
    return fields


def cpu_model(root: Path = Path("/")) -> str:
    """The CPU's model name as the system reports it (Linux: /proc/cpuinfo)."""
    info = _cpuinfo(root)
    return info.get("model name") or info.get("Model") or platform.processor() or platform.machine()


def cpu_flags(root: Path = Path("/")) -> list[str]:
    """Which of CPU_FLAGS the CPU has (x86's "flags", ARM's "Features")."""
    info = _cpuinfo(root)
    present = set((info.get("flags") or info.get("Features") or "").split())
    return [flag for flag in CPU_FLAGS if flag in present]


def tune_key() -> dict[str, Any]:
    """What a tune is valid for: another CPU, core count or onnxruntime is another tune."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "onnxruntime": backend_version("onnxruntime")}


def git_commit(folder: Path, run: Runner = run_quietly) -> str | None:
    """The commit of the checkout `folder` is in ("+" when it has changes), or None when it is not one."""
    commit = run(["git", "-C", str(folder), "rev-parse", "--short=12", "HEAD"])
    if not commit:
        return None
    changed = run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"])
    return commit + ("+" if changed else "")


def raspberry_pi(root: Path = Path("/"), run: Runner = run_quietly) -> dict[str, Any] | None:
    """A Raspberry Pi's model, and its throttled state (under-voltage, heat) when vcgencmd says it."""
    model = (_read(root / "proc" / "device-tree" / "model") or "").rstrip("\x00").strip()
    if "Raspberry Pi" not in model:
        return None
    throttled = run(["vcgencmd", "get_throttled"])  # "throttled=0x0": nothing since boot
    return {"model": model, "throttled": throttled.partition("=")[2] if throttled else None}


def describe(root: Path = Path("/"), run: Runner = run_quietly) -> dict[str, Any]:
    """What a reader needs to compare figures between machines."""
    from . import __version__  # here, not at the top: the package imports this module while it loads

    cpufreq = root / "sys" / "devices" / "system" / "cpu" / "cpu0" / "cpufreq"
    clock_khz = (_read(cpufreq / "scaling_cur_freq") or "").strip()
    clock = int(clock_khz) / 1000 if clock_khz.isdigit() else _mhz(_cpuinfo(root).get("cpu MHz"))
    return {
        "fable": __version__,
        "commit": git_commit(Path(__file__).resolve().parent, run),
        "cpu": cpu_model(root),
        "cores": os.cpu_count(),
        "cpu_flags": cpu_flags(root),
        "governor": (_read(cpufreq / "scaling_governor") or "").strip() or None,
        "clock_mhz": clock,
        "arch": platform.machine(),
        "userland_bits": 8 * struct.calcsize("P"),  # 32 on a 32-bit OS under a 64-bit kernel too
        "raspberry_pi": raspberry_pi(root, run),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        **{name: backend_version(name) for name in BACKENDS if name != "numpy"},
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
    }


def load_average() -> float | None:
    """The last minute's load average, where the system keeps one."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def _mhz(text: str | None) -> float | None:
    try:
        return round(float(text), 1) if text else None
    except ValueError:
        return None
