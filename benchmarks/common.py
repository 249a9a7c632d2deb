"""What the benchmarks share: the machine record, the variants and workloads, the jitted
step, XLA's cost accounting and interleaved timing.

Every number a benchmark writes goes out beside :func:`machine_info`, so a result
always says where it was measured. Timings are noisy on a shared machine, so
contenders run in the same process, interleaved in rounds (the order reverses every
round, or is shuffled), and results are compared as ratios of medians over rounds.
Measuring scripts write JSON; ``render.py`` turns it into Markdown and plots.
``tests/test_cost.py`` imports the variants, workloads and step from here.

Not a test module: pytest does not collect it (the suite's testpaths are ``tests``
and ``optax_rmsprop``, and nothing here is named ``test_*``).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

import optax_rmsprop

Runner = Callable[[int], float]  # runs n calls, returns seconds per call
Shapes = dict[str, tuple[int, ...]]
RESULTS = Path(__file__).resolve().parent / "results"

# ---------------------------------------------------------------------------
# Variants: our options by name; optax.rmsprop gets the same ones but the state dtype.

VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "momentum": {"momentum": 0.9},
    "nesterov": {"momentum": 0.9, "nesterov": True},
    "centered": {"centered": True},
    "centered+momentum": {"centered": True, "momentum": 0.9},
    "eps_outside": {"eps_in_sqrt": False},
    "bias_correction": {"bias_correction": True},
    "bias_correction+eps_outside": {"bias_correction": True, "eps_in_sqrt": False},
    "int8": {"nu_dtype": "int8"},
    "bf16": {"nu_dtype": jnp.bfloat16},
    # every buffer in 8 bits: v, and b (and m̄) in signed codes
    "int8+momentum": {"momentum": 0.9, "nu_dtype": "int8", "mu_dtype": "int8"},
    "int8+centered+momentum": {
        "centered": True,
        "momentum": 0.9,
        "nu_dtype": "int8",
        "mu_dtype": "int8",
    },
}
# our options optax.rmsprop lacks: its reference is float32 state
STATE_ONLY = ("nu_dtype", "mu_dtype")


def transformations(
    variant: str, learning_rate: float = 1e-3, **hyper: float
) -> dict[str, optax.GradientTransformation]:
    """Ours and ``optax.rmsprop`` for a variant, with the same hyperparameters."""
    options = VARIANTS[variant]
    reference = {k: v for k, v in options.items() if k not in STATE_ONLY}
    return {
        "ours": optax_rmsprop.rmsprop(learning_rate, **hyper, **options),
        "optax": optax.rmsprop(learning_rate, **hyper, **reference),
    }


# ---------------------------------------------------------------------------
# Workloads (float32 parameters): flat dicts of leaf name -> shape.


def single_leaf() -> Shapes:
    return {"w": (4096, 4096)}


def mlp(layers: int = 30, width: int = 960) -> Shapes:
    shapes: Shapes = {}
    for i in range(layers):
        shapes[f"dense_{i:02d}/kernel"] = (width, width)
        shapes[f"dense_{i:02d}/bias"] = (width,)
    return shapes


def resnet50() -> Shapes:
    """The parameter shapes of ResNet-50 (torchvision layout, HWIO kernels): 161 leaves."""
    shapes: Shapes = {"conv1/kernel": (7, 7, 3, 64), "bn1/scale": (64,), "bn1/bias": (64,)}
    cin = 64
    for stage, (blocks, width) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512), strict=True)):
        for block in range(blocks):
            name = f"layer{stage + 1}/block{block}"
            convs = [(1, 1, cin, width), (3, 3, width, width), (1, 1, width, 4 * width)]
            for j, shape in enumerate(convs):
                shapes[f"{name}/conv{j + 1}/kernel"] = shape
                shapes[f"{name}/bn{j + 1}/scale"] = (shape[-1],)
                shapes[f"{name}/bn{j + 1}/bias"] = (shape[-1],)
            if block == 0:
                shapes[f"{name}/downsample/kernel"] = (1, 1, cin, 4 * width)
                shapes[f"{name}/downsample/bn/scale"] = (4 * width,)
                shapes[f"{name}/downsample/bn/bias"] = (4 * width,)
            cin = 4 * width
    shapes["fc/kernel"] = (2048, 1000)
    shapes["fc/bias"] = (1000,)
    return shapes


def small_leaves(n: int = 1000, size: int = 1024) -> Shapes:
    return {f"leaf_{i:04d}": (size,) for i in range(n)}


WORKLOADS: dict[str, Callable[[], Shapes]] = {
    "single-16M": single_leaf,  # one 4096 x 4096 leaf
    "mlp-28M": mlp,  # 30 dense layers of width 960: 60 leaves, 27.7M
    "resnet50-25M": resnet50,  # 161 leaves, 25.6M
    "1000x1k": small_leaves,  # 1000 leaves of 1024
}


def n_params(shapes: Shapes) -> int:
    return sum(math.prod(s) for s in shapes.values())


def abstract(shapes: Shapes) -> dict[str, jax.ShapeDtypeStruct]:
    """float32 shapes only: compiling from these allocates nothing."""
    return {name: jax.ShapeDtypeStruct(shape, jnp.float32) for name, shape in shapes.items()}


# ---------------------------------------------------------------------------
# The step and XLA's accounting of it.


def jitted_step(tx: optax.GradientTransformation, name: str = "step") -> Callable:
    """``jit(update + apply_updates)`` with params and state donated; a fresh jit each call
    (``name``: the function's, which names XLA's module)."""

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    step.__name__ = name
    return jax.jit(step, donate_argnums=(0, 1))


def compile_step(tx: optax.GradientTransformation, params: Any) -> Any:
    """The compiled step for ``params`` (arrays or shapes), its state from ``tx.init``."""
    state = jax.eval_shape(tx.init, params)
    return jitted_step(tx).lower(params, state, params).compile()


def xla_cost(compiled: Any) -> dict[str, float]:
    """XLA's bytes accessed and flops, and the compiled memory sizes, of a compiled function."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax: one dict per computation
        cost = cost[0]
    memory = compiled.memory_analysis()
    return {
        "bytes_accessed": float(cost.get("bytes accessed", float("nan"))),
        "flops": float(cost.get("flops", float("nan"))),
        "temp_bytes": int(memory.temp_size_in_bytes),
        "argument_bytes": int(memory.argument_size_in_bytes),
        "output_bytes": int(memory.output_size_in_bytes),
    }


def write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=str) + "\n")


# ---------------------------------------------------------------------------
# The machine.


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
    return "; ".join(parts + ([info["date_utc"]] if info.get("date_utc") else []))


# ---------------------------------------------------------------------------
# Timing.


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
