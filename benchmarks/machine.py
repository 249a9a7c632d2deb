"""Where a result was measured: every number a benchmark writes goes out beside
:func:`machine_info`, and :func:`write_json` writes it."""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax

import optax_rmsprop

RESULTS = Path(__file__).resolve().parent / "results"


def write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")


def draw(path: Path) -> None:
    """Runs the renderer's command on ``path``: the tables and plots beside it."""
    renderer = Path(__file__).resolve().parent / "render.py"
    subprocess.run([sys.executable, str(renderer), str(path)], check=True)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def vector_extensions() -> str:
    """The CPU's vector extensions that change XLA:CPU's code (``/proc/cpuinfo``)."""
    try:
        flags = next(
            line.split(":", 1)[1].split()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("flags")
        )
    except (OSError, StopIteration):
        return "unknown"
    return ", ".join(f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f") if f in flags)


def _torch_threads() -> int | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.get_num_threads()


def machine_info() -> dict[str, Any]:
    """The machine, the JAX device and the package versions, as JSON-ready values."""
    import jaxlib

    device = jax.devices()[0]
    try:
        stats = device.memory_stats() or {}
    except Exception:  # noqa: BLE001 - not every backend implements it
        stats = {}
    return {
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_model": _cpu_model(),
        "vector_extensions": vector_extensions(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": _memory_gib(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "optax_rmsprop": optax_rmsprop.__version__,
        "torch": _version("torch"),
        "torch_threads": _torch_threads(),
        "backend": jax.default_backend(),
        "device": str(device),
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "device_memory_gib": (
            round(stats["bytes_limit"] / 2**30, 1) if "bytes_limit" in stats else None
        ),
        "xla_flags": os.environ.get("XLA_FLAGS"),
        "ld_preload": os.environ.get("LD_PRELOAD"),  # a malloc in place of the C library's
        "git_commit": _git_commit(),
    }


def machine_line(info: dict[str, Any]) -> str:
    """One line naming the machine, the device and the versions (older records lack some)."""
    cpus = info.get("cpus_usable") or info.get("cpu_count")
    memory = info.get("memory_gib")
    machine = [info.get("cpu_model") or info.get("processor"), cpus and f"{cpus} CPUs"]
    names = ("jax", "optax", "optax_rmsprop", "torch")
    parts = [
        ", ".join(str(x) for x in [*machine, memory and f"{memory} GiB"] if x),
        f"device {info.get('device_kind')} ({info.get('backend')})",
        ", ".join(f"{name} {info[name]}" for name in names if info.get(name)),
    ]
    labels = {"xla_flags": "XLA_FLAGS", "ld_preload": "LD_PRELOAD"}
    parts.append(", ".join(f"{labels[k]}={info[k]}" for k in labels if info.get(k)))
    return "; ".join([p for p in parts if p] + ([info["date_utc"]] if info.get("date_utc") else []))
