"""What the benchmarks share: the machine record and interleaved timing.

Every number a benchmark writes goes out beside :func:`machine_info`, so a result
always says where it was measured. Timings are noisy on a shared machine, so
contenders run in the same process, interleaved in rounds (the order reverses every
round, or is shuffled), and results are compared as ratios of medians over rounds.

Not a test module: pytest does not collect it (the suite's testpaths are ``tests``
and ``optax_rmsprop``, and nothing here is named ``test_*``).
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax

import optax_rmsprop

Runner = Callable[[int], float]  # runs n calls, returns seconds per call


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
        "git_commit": _git_commit(),
    }


def machine_line(info: dict[str, Any]) -> str:
    """One line naming the machine, the device and the versions."""
    return (
        f"{info['cpu_model']}, {info['cpus_usable'] or info['cpu_count']} CPUs, "
        f"{info['memory_gib']} GiB; device {info['device_kind']} ({info['backend']}); "
        f"jax {info['jax']}, optax {info['optax']}, optax_rmsprop {info['optax_rmsprop']}, "
        f"torch {info['torch']}; {info['date_utc']}"
    )


def stepper(update: Callable, grads: Any, params: Any, state: Any) -> Runner:
    """A function of n that runs n ``update(grads, state, params)`` calls, threading the
    state and waiting for each; it returns seconds per call."""

    def run(n: int) -> float:
        nonlocal state
        start = time.perf_counter()
        for _ in range(n):
            updates, state = update(grads, state, params)
            jax.block_until_ready((updates, state))
        return (time.perf_counter() - start) / n

    return run


def calls_for(run: Runner, target_s: float, max_calls: int = 1000) -> int:
    """How many calls make a sample of about ``target_s`` seconds (one call timed)."""
    return max(1, min(max_calls, round(target_s / max(run(1), 1e-9))))


def interleave(
    runners: dict[str, Runner],
    rounds: int,
    calls: dict[str, int] | int,
    shuffle: int | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of each runner, one sample per round.

    The order alternates (forward, then reversed) or, given a ``shuffle`` seed, is a fresh
    random permutation each round, so that no runner keeps a place (first after another
    runner's buffers, say) that favours it.
    """
    if isinstance(calls, int):
        calls = dict.fromkeys(runners, calls)
    labels = list(runners)
    rng = np.random.default_rng(shuffle)
    times: dict[str, list[float]] = {label: [] for label in labels}
    for r in range(rounds):
        if shuffle is not None:
            order = [labels[i] for i in rng.permutation(len(labels))]
        else:
            order = labels if r % 2 == 0 else labels[::-1]
        for label in order:
            times[label].append(runners[label](calls[label]))
    return times


def median(samples: list[float]) -> float:
    return statistics.median(samples)
