"""The machine fable runs on, described once: for tune-cache keys and for benchmark results."""

from __future__ import annotations

import os
import platform
from typing import Any

import numpy as np

from .backend import BACKENDS, backend_version


def cpu_model() -> str:
    """The CPU's model name as the system reports it (Linux: /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            names = [line.split(":", 1)[1].strip() for line in info if line.startswith(("model name", "Model"))]
    except OSError:
        names = []
    return names[0] if names else (platform.processor() or platform.machine())


def tune_key() -> dict[str, Any]:
    """What a tune is valid for: another CPU, core count or onnxruntime is another tune."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "onnxruntime": backend_version("onnxruntime")}


def describe() -> dict[str, Any]:
    """What a reader needs to compare figures between machines."""
    from . import __version__  # here, not at the top: the package imports this module while it loads

    return {
        "cpu": cpu_model(),
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        **{name: backend_version(name) for name in BACKENDS if name != "numpy"},
        "fable": __version__,
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
    }
