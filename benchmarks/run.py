"""The benchmark suite: optax_rmsprop against optax.rmsprop, torch and the bandwidth floor.

    python benchmarks/run.py                    # full (about 11 minutes on 2 shared CPU cores)
    python benchmarks/run.py --preset quick     # 3 variants, 3 rounds
    python benchmarks/run.py --preset smoke --workloads single-16M --variants plain
    bash benchmarks/gpu.sh                      # on a GPU: see docs/benchmarks.md

Measures, and writes the raw samples with the machine, the device, the versions and the
protocol to ``results.json`` (after every case, so a run cut short keeps what it measured);
``render.py`` then writes ``results.md`` and the plots from that file alone.

Workloads and variants are ``common.py``'s. For each workload and variant, in one process:

* **step**: ``jax.jit(update + apply_updates)`` with the params and the state donated, ours
  and ``optax.rmsprop`` (same hyperparameters; for ``int8`` and ``bf16`` optax's float32
  state) interleaved in rounds in a random order each round, each compiled twice with
  buffers of its own (ours and optax pool their two copies; each against its own copy, A/A,
  is the noise of the ratio), with the bandwidth-floor kernel, the copy kernel and
  ``torch.optim.RMSprop`` (``foreach`` True and False, float state only; on the device the
  JAX arrays are on when torch can use it: CPU, or CUDA under a GPU backend, else skipped;
  on a CPU with the faster of its default thread count and 1 thread, as an oversubscribed
  CPU stalls its OpenMP threads). Each sample is the mean of a few calls, each waited for
  (``block_until_ready``; ``torch.cuda.synchronize``).
* **floor**: a jitted kernel that reads and writes exactly the bytes the step must move
  (``p + g`` into ``p``, every state buffer rewritten in place); **copy**: a donated
  ``x + 1`` over 256 MiB, the device's copy bandwidth.
* **cost**: XLA's ``bytes accessed`` and the compiled memory sizes; **state**:
  ``optax_rmsprop.state_size`` for both.
* **compile**: trace, lower and compile of the jitted step, ours and optax's alternating,
  fresh each repetition.
* **eager**: un-jitted ``tx.update``, ours and optax's interleaved, and a jitted ``x + 1``
  writing as many fresh arrays as our update returns (an eager call cannot reuse its
  inputs' memory).

JAX runs on ``jax.devices()[0]`` (CPU, GPU or TPU). Not a test module.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import optax
from common import (
    RESULTS,
    VARIANTS,
    WORKLOADS,
    Runner,
    Shapes,
    calls_for,
    interleave,
    jitted_step,
    machine_info,
    machine_line,
    n_params,
    stepper,
    transformations,
    write_json,
    xla_cost,
)

import optax_rmsprop

HYPER = {"decay": 0.9, "eps": 1e-8}
LEARNING_RATE = 1e-3
SUITE_VARIANTS = (
    "plain",
    "momentum",
    "centered+momentum",
    "int8",
    "bf16",
    "int8+momentum",
    "int8+centered+momentum",
)
TORCH_VARIANTS = ("plain", "momentum", "centered+momentum")  # torch has no narrower state
TWIN = {"ours": "ours 2", "optax": "optax 2"}  # each step's second compiled copy


@dataclasses.dataclass(frozen=True)
class Protocol:
    rounds: int  # interleaved rounds of step timing
    eager_rounds: int
    compile_reps: int
    sample_s: float  # seconds per timing sample (a few calls); 0: one call
    warmup: int  # untimed calls per runner
    variants: tuple[str, ...] = SUITE_VARIANTS


PRESETS = {
    "full": Protocol(15, 9, 3, 0.1, 2),
    "quick": Protocol(3, 2, 1, 0.0, 1, ("plain", "centered+momentum", "int8")),
    "gpu": Protocol(9, 5, 2, 0.05, 3),  # all cases in about 6 minutes on one H100 (estimate)
    "smoke": Protocol(1, 1, 1, 0.0, 1, ("plain", "int8")),  # end to end, numbers meaningless
}


def make_tree(shapes: Shapes, seed: int, scale: float) -> dict[str, jax.Array]:
    keys = jax.random.split(jax.random.key(seed), len(shapes))
    return {
        name: scale * jax.random.normal(key, shape, jnp.float32)
        for key, (name, shape) in zip(keys, shapes.items(), strict=True)
    }


def copy_tree(tree: Any) -> Any:
    return jax.tree.map(jnp.copy, tree)


def floor_kernel() -> Callable:
    """Moves what a step must move and no more: ``p <- p + g``, each state buffer
    rewritten in place (floats negated, integers incremented)."""

    def rewrite(x):
        return x + jnp.ones((), x.dtype) if jnp.issubdtype(x.dtype, jnp.integer) else -x

    def kernel(params, state, grads):
        return jax.tree.map(jnp.add, params, grads), jax.tree.map(rewrite, state)

    return jax.jit(kernel, donate_argnums=(0, 1))


def compile_timed(jitted: Callable, *args: Any) -> tuple[Any, dict[str, float]]:
    t0 = time.perf_counter()
    traced = jitted.trace(*args)
    t1 = time.perf_counter()
    lowered = traced.lower()
    t2 = time.perf_counter()
    compiled = lowered.compile()
    t3 = time.perf_counter()
    return compiled, {"trace": t1 - t0, "lower": t2 - t1, "compile": t3 - t2, "total": t3 - t0}


def compiled_runner(compiled: Any, params: Any, state: Any, grads: Any) -> Runner:
    box = [params, state]

    def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            box[0], box[1] = compiled(box[0], box[1], grads)
            jax.block_until_ready(box)
        return (time.perf_counter() - start) / n

    return run


def fresh_buffers_runner(tx: optax.GradientTransformation, grads: Any, params: Any) -> Runner:
    """The eager reference: a jitted ``x + 1`` over each distinct array an eager
    ``tx.update`` returns, nothing donated, so each call writes as many fresh buffers."""
    updates, state = tx.update(grads, tx.init(params), params)
    outputs = list({id(x): x for x in jax.tree.leaves((updates, state))}.values())
    kernel = jax.jit(lambda xs: [x + 1 for x in xs])

    def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            jax.block_until_ready(kernel(outputs))
        return (time.perf_counter() - start) / n

    return run


def copy_runner() -> tuple[Runner, float]:
    """A donated ``x + 1`` over 256 MiB of float32, and the bytes it moves."""
    box = [jnp.zeros((64 * 2**20,), jnp.float32)]
    compiled = jax.jit(lambda x: x + 1, donate_argnums=0).lower(box[0]).compile()

    def run(k: int) -> float:
        start = time.perf_counter()
        for _ in range(k):
            box[0] = compiled(box[0])
            jax.block_until_ready(box[0])
        return (time.perf_counter() - start) / k

    return run, xla_cost(compiled)["bytes_accessed"]


# ---------------------------------------------------------------------------
# torch, on the JAX arrays' device where it can use it.


def torch_device(enabled: bool) -> str | None:
    if not enabled:
        return None
    try:
        import torch
    except ImportError:
        print("torch is not installed: skipping it", file=sys.stderr)
        return None
    backend = jax.default_backend()
    if backend == "cpu":
        return "cpu"
    if backend == "gpu" and torch.cuda.is_available():
        return "cuda"
    print(f"torch cannot run on JAX's {backend} device: skipping it", file=sys.stderr)
    return None


def torch_runner(variant: str, shapes: Shapes, foreach: bool, device: str) -> Runner:
    import torch

    generator = torch.Generator().manual_seed(0)
    params = []
    for shape in shapes.values():
        p = torch.nn.Parameter((0.02 * torch.randn(shape, generator=generator)).to(device))
        p.grad = (1e-3 * torch.randn(shape, generator=generator)).to(device)
        params.append(p)
    options = VARIANTS[variant]
    opt = torch.optim.RMSprop(
        params,
        lr=LEARNING_RATE,
        alpha=HYPER["decay"],
        eps=HYPER["eps"],
        momentum=options.get("momentum", 0.0),
        centered=options.get("centered", False),
        foreach=foreach,
    )
    wait = torch.cuda.synchronize if device == "cuda" else lambda: None

    def run(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            opt.step()
            wait()
        return (time.perf_counter() - start) / n

    return run


def faster_torch_threads(shapes: Shapes) -> int:
    """The faster of torch's default thread count and 1 for this workload (plain step): on a
    shared CPU its OpenMP threads can stall each other at every barrier."""
    import torch

    default = torch.get_num_threads()
    best = {}
    for threads in dict.fromkeys((default, 1)):
        torch.set_num_threads(threads)
        runs = [torch_runner("plain", shapes, foreach, "cpu") for foreach in (True, False)]
        for run in runs:
            run(1)
        best[threads] = min(run(1) for run in runs)
    torch.set_num_threads(default)
    return min(best, key=best.__getitem__)


# ---------------------------------------------------------------------------
# One case: a workload and a variant.


@dataclasses.dataclass
class Suite:
    protocol: Protocol
    torch_device: str | None
    copy_run: Runner
    torch_threads: dict[str, int] = dataclasses.field(default_factory=dict)
    floors: dict[Any, Any] = dataclasses.field(default_factory=dict)  # by state structure

    def calls(self, runners: dict[str, Runner]) -> dict[str, int]:
        for run in runners.values():
            run(self.protocol.warmup)
        s = self.protocol.sample_s
        return {name: calls_for(run, s) if s else 1 for name, run in runners.items()}

    def case(self, workload: str, variant: str, seed: int) -> dict[str, Any]:
        shapes = WORKLOADS[workload]()
        n = n_params(shapes)
        params, grads = make_tree(shapes, 0, 0.02), make_tree(shapes, 1, 1e-3)
        txs = transformations(variant, LEARNING_RATE, **HYPER)
        record: dict[str, Any] = {
            "workload": workload,
            "variant": variant,
            "options": {k: str(v) for k, v in VARIANTS[variant].items()},
            "leaves": len(shapes),
            "parameters": n,
            "state_bytes_per_param": {
                name: optax_rmsprop.state_size(tx, params).bytes_per_param
                for name, tx in txs.items()
            },
        }
        phase_s = record["phase_s"] = {}
        tick = time.perf_counter()

        # Compile: a fresh jit each repetition, ours and optax's alternating.
        states = {name: tx.init(params) for name, tx in txs.items()}
        compile_s: dict[str, dict[str, list[float]]] = {name: {} for name in txs}
        compiled: dict[str, Any] = {}
        for r in range(self.protocol.compile_reps):
            for name in list(txs) if r % 2 == 0 else list(txs)[::-1]:
                compiled[name], times = compile_timed(
                    jitted_step(txs[name]), params, states[name], grads
                )
                for key, value in times.items():
                    compile_s[name].setdefault(key, []).append(value)
        record["compile_s"] = compile_s
        key = (
            workload,
            jax.tree.structure(states["ours"]),
            tuple((x.shape, x.dtype) for x in jax.tree.leaves(states["ours"])),
        )
        if key not in self.floors:  # variants with the same state share it
            self.floors = {key: compile_timed(floor_kernel(), params, states["ours"], grads)[0]}
        floor = self.floors[key]
        record["xla"] = {name: xla_cost(c) for name, c in compiled.items()}
        record["xla"]["floor"] = xla_cost(floor)
        for name, twin in TWIN.items():
            compiled[twin] = jitted_step(txs[name]).lower(params, states[name], grads).compile()
        phase_s["compile"], tick = time.perf_counter() - tick, time.perf_counter()

        # Step time: donated jit steps, the floor, the copy kernel and torch, interleaved.
        runners = {
            name: compiled_runner(compiled[name], copy_tree(params), states[name], grads)
            for name in txs
        }
        for name, twin in TWIN.items():
            runners[twin] = compiled_runner(
                compiled[twin], copy_tree(params), txs[name].init(params), grads
            )
        runners["copy"] = self.copy_run  # the copy bandwidth, in the same rounds
        runners["floor"] = compiled_runner(
            floor, copy_tree(params), copy_tree(txs["ours"].init(params)), grads
        )
        if self.torch_device and variant in TORCH_VARIANTS:
            if self.torch_device == "cpu":
                import torch

                if workload not in self.torch_threads:
                    self.torch_threads[workload] = faster_torch_threads(shapes)
                torch.set_num_threads(self.torch_threads[workload])
                record["torch_threads"] = self.torch_threads[workload]
            record["torch_device"] = self.torch_device
            for label, foreach in (("torch foreach", True), ("torch for-loop", False)):
                runners[label] = torch_runner(variant, shapes, foreach, self.torch_device)
        record["step_calls_per_round"] = calls = self.calls(runners)
        record["step_s"] = interleave(runners, self.protocol.rounds, calls, shuffle=seed)
        phase_s["step"], tick = time.perf_counter() - tick, time.perf_counter()
        del runners, compiled, floor
        gc.collect()

        # Eager update: ours calls one cached compiled step; optax runs op by op.
        eager = {
            name: stepper(tx.update, grads, params, tx.init(params)) for name, tx in txs.items()
        }
        eager["fresh"] = fresh_buffers_runner(txs["ours"], grads, params)
        record["eager_calls_per_round"] = calls = self.calls(eager)
        record["eager_s"] = interleave(eager, self.protocol.eager_rounds, calls)
        phase_s["eager"] = time.perf_counter() - tick
        return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=PRESETS, default="full", help="rounds and variants")
    parser.add_argument("--quick", action="store_const", const="quick", dest="preset")
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--variants", nargs="+", choices=SUITE_VARIANTS, help="default: preset's")
    parser.add_argument("--no-torch", dest="torch", action="store_false", help="skip torch")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--budget-s", type=float, help="start no case after this many seconds")
    parser.add_argument("--no-render", dest="render", action="store_false")
    args = parser.parse_args(argv)
    protocol = PRESETS[args.preset]
    if args.variants:
        protocol = dataclasses.replace(protocol, variants=tuple(args.variants))

    start = time.perf_counter()
    info = machine_info()
    print(f"Machine: {machine_line(info)}", file=sys.stderr)
    copy_run, copy_bytes = copy_runner()
    copy_run(2)
    calls = calls_for(copy_run, protocol.sample_s) if protocol.sample_s else 1
    suite = Suite(protocol, torch_device(args.torch), copy_run)
    cases = [(w, v) for w in args.workloads for v in protocol.variants]
    payload: dict[str, Any] = {
        "benchmark": "optax_rmsprop suite",
        "machine": info,
        "meta": {
            "mode": args.preset,
            **{k: v for k, v in dataclasses.asdict(protocol).items() if k != "variants"},
            "statistic": "median over rounds of the mean seconds per call; ratios of medians",
            "hyperparameters": {"learning_rate": LEARNING_RATE, **HYPER},
            "copy_bandwidth": {
                "bytes_moved": copy_bytes,
                "times_s": interleave({"copy": copy_run}, protocol.rounds, calls)["copy"],
            },
            "torch_device": suite.torch_device,
            "torch_threads": suite.torch_threads,
            "cases": [f"{w}/{v}" for w, v in cases],
            "complete": False,
        },
        "records": [],
    }
    path = args.out / "results.json"
    for seed, (w, v) in enumerate(cases):
        elapsed = time.perf_counter() - start
        if args.budget_s is not None and elapsed > args.budget_s:
            print(
                f"budget of {args.budget_s:.0f} s spent: stopping before {w}/{v}", file=sys.stderr
            )
            break
        print(f"[{elapsed:6.0f} s] {w} / {v}", file=sys.stderr, flush=True)
        record = suite.case(w, v, seed)
        record["env"] = {k: info[k] for k in ("backend", "device_kind", "jax", "optax")}
        payload["records"].append(record)
        payload["meta"]["wall_s"] = time.perf_counter() - start
        write_json(path, payload)  # after every case: a run cut short keeps what it measured
        gc.collect()
    payload["meta"]["complete"] = len(payload["records"]) == len(cases)
    payload["meta"]["wall_s"] = time.perf_counter() - start
    info["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    write_json(path, payload)
    print(f"wrote {path}", file=sys.stderr)
    if args.render:
        import render

        for written in render.render_suite(path):
            print(f"wrote {written}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
