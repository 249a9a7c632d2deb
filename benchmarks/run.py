"""The benchmark suite: optax_rmsprop against optax.rmsprop, torch and the bandwidth floor.

    python benchmarks/run.py                    # full (about 11 minutes on 2 shared CPU cores)
    python benchmarks/run.py --preset quick     # 3 variants, 3 rounds
    python benchmarks/run.py --preset smoke --workloads single-16M --variants plain
    bash benchmarks/gpu.sh                      # on a GPU: see docs/benchmarks.md

Measures, and writes the raw samples with the machine, the device, the versions and the
protocol to ``results.json`` (after every case, so a run cut short keeps what it measured);
Each record carries its medians and ratios (``summary``), and the file the timing targets
with their verdicts (``targets``), computed here from the raw samples; ``--derive FILE``
computes them again from a file's samples without measuring. ``render.py`` then writes
``results.md`` and the plots from that file alone.

Workloads and variants are ``workloads.py``'s and ``variants.py``'s. For each workload and
variant, in one process:

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
import json
import math
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from machine import RESULTS, draw, machine_info, machine_line, write_json
from step import jitted_step, xla_cost
from timing import Runner, calls_for, interleave, stepper
from variants import SUITE, VARIANTS, transformations
from workloads import WORKLOADS, Shapes, make_tree, n_params

import optax_rmsprop

HYPER = {"decay": 0.9, "eps": 1e-8}
LEARNING_RATE = 1e-3
SUITE_VARIANTS = SUITE
TORCH_VARIANTS = ("plain", "momentum", "centered+momentum")  # torch has no narrower state
TWIN = {"ours": "ours 2", "optax": "optax 2"}  # each step's second compiled copy
FLOAT32_STATE = ("plain", "momentum", "centered+momentum")  # where ours must match optax
# each 8-bit variant and the float32 one with the same buffers
EIGHT_BIT = {
    "int8": "plain",
    "int8+momentum": "momentum",
    "int8+centered+momentum": "centered+momentum",
}
LARGE = ("single-16M", "mlp-28M", "resnet50-25M")  # where the torch target applies


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


def page_faults(run: Runner, calls: int = 5) -> float:
    """Minor page faults of this process per call: memory the step maps afresh (XLA:CPU's
    temporary arrays, where ``malloc`` returns them to the system between steps)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    run(calls)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls


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
# What the samples give: medians, ratios and the timing targets.


def gmean(xs: list[float]) -> float:
    return math.exp(np.mean(np.log(xs)))


def summarize(record: dict[str, Any], copy_bytes: float) -> dict[str, Any]:
    """Medians and the ratios the report is about, from one case's raw samples."""
    med = statistics.median
    step = {name: med(ts) for name, ts in record["step_s"].items() if name != "copy"}
    copy_bps = copy_bytes / med(record["step_s"]["copy"])  # measured in the same rounds
    eager = {name: med(ts) for name, ts in record["eager_s"].items()}
    compile_total = {name: med(t["total"]) for name, t in record["compile_s"].items()}
    xla, n = record["xla"], record["parameters"]
    torch = [step[k] for k in ("torch foreach", "torch for-loop") if k in step]
    # What a step must move: read p, g and the state, write p and the state (float32 params).
    state = record["state_bytes_per_param"]
    own = {k: state["ours" if k.startswith("ours") or k == "floor" else "optax"] for k in step}
    times = {k: np.array(v) for k, v in record["step_s"].items()}
    per_round = (times["ours"] + times["ours 2"]) / (times["optax"] + times["optax 2"])
    aa = {name: step[twin] / step[name] for name, twin in TWIN.items()}
    pooled = {name: (step[name] + step[twin]) / 2 for name, twin in TWIN.items()}
    main = {k: t for k, t in {**step, **pooled}.items() if k not in TWIN.values()}
    return {
        "step_ms": {k: v * 1e3 for k, v in main.items()},  # ours, optax: both copies pooled
        "step_ratio_per_round_quartiles": [float(q) for q in np.quantile(per_round, [0.25, 0.75])],
        "step_ours_over_optax": pooled["ours"] / pooled["optax"],
        "step_aa": aa,  # each implementation against its own second copy
        "step_aa_noise": max(abs(x - 1) for x in aa.values()),
        "step_ours_over_floor": pooled["ours"] / step["floor"],
        "torch_best_over_ours": min(torch) / pooled["ours"] if torch else None,
        "bytes_per_param": {k: xla[k]["bytes_accessed"] / n for k in ("ours", "optax", "floor")},
        "bytes_ours_minus_optax": xla["ours"]["bytes_accessed"] - xla["optax"]["bytes_accessed"],
        "bytes_ours_over_optax": xla["ours"]["bytes_accessed"] / xla["optax"]["bytes_accessed"],
        "temp_mib": {k: xla[k]["temp_bytes"] / 2**20 for k in ("ours", "optax")},
        "page_faults_per_step": record.get("page_faults_per_step"),  # older records lack it
        # The bytes each step must move over its time, as a fraction of the copy bandwidth.
        "useful_bandwidth_fraction": {
            k: n * (12 + 2 * own[k]) / t / copy_bps for k, t in main.items()
        },
        "compile_s": compile_total,
        "compile_ours_over_optax": compile_total["ours"] / compile_total["optax"],
        "trace_s": {k: med(t["trace"]) for k, t in record["compile_s"].items()},
        "eager_ms": {k: v * 1e3 for k, v in eager.items()},
        "eager_speedup": eager["optax"] / eager["ours"],
        "eager_ours_over_fresh": eager["ours"] / eager["fresh"] if "fresh" in eager else None,
        "state_bytes_per_param": state,
        "copy_gb_per_s": copy_bps / 1e9,
    }


Summaries = dict[tuple[str, str], dict[str, Any]]


def targets(by: Summaries) -> list[dict[str, Any]]:
    """The timing targets, each met or not, with the numbers behind it."""
    out: list[tuple[bool, str]] = []
    same = {k: s for k, s in by.items() if k[1] in FLOAT32_STATE}
    if same:  # ours against optax on float32 state, within the A/A noise of this run
        noise = max(s["step_aa_noise"] for s in same.values())
        ratios = [s["step_ours_over_optax"] for s in same.values()]
        aa_all = [x for s in same.values() for x in s["step_aa"].values()]
        worst = max(same, key=lambda k: same[k]["step_ours_over_optax"])
        slower = [
            f"{w}/{v} {s['step_ours_over_optax']:.2f}"
            for (w, v), s in same.items()
            if s["step_ours_over_optax"] > 1 + noise
        ]
        out.append(
            (
                not slower,
                f"step time ours <= optax within the A/A noise (1 + {noise:.2f}: the farthest "
                "from 1 either implementation is from its own second copy in this run) for "
                "every workload and float32-state variant (worst ours/optax "
                f"{same[worst]['step_ours_over_optax']:.2f} on {worst[0]}/{worst[1]}; above 1 "
                f"in {sum(x > 1 for x in ratios)} of {len(ratios)} cases, A/A in "
                f"{sum(x > 1 for x in aa_all)} of {len(aa_all)}; geometric means ours/optax "
                f"{gmean(ratios):.3f}, A/A {gmean(aa_all):.3f}"
                + (f"; beyond the noise: {', '.join(slower)})" if slower else ")"),
            )
        )
    slowest = min(by, key=lambda k: by[k]["eager_speedup"])
    out.append(
        (
            by[slowest]["eager_speedup"] >= 5,
            f"eager update >= 5x faster than optax's (slowest {by[slowest]['eager_speedup']:.1f}x "
            f"on {slowest[0]}/{slowest[1]}, where ours takes "
            f"{format_or_na(by[slowest]['eager_ours_over_fresh'])}x a kernel writing the same "
            f"fresh buffers; fastest {max(s['eager_speedup'] for s in by.values()):.1f}x)",
        )
    )

    def all_within(name: str, values: dict[str, float], limit: float, text: str) -> None:
        if values:
            listed = ", ".join(f"{v} {x:.2f}" for v, x in values.items())
            out.append((all(x <= limit for x in values.values()), f"{text} ({name}: {listed})"))

    all_within(
        "ours/optax",
        {v: s["compile_ours_over_optax"] for (w, v), s in by.items() if w == "1000x1k"},
        1.0,
        "compile time <= optax's on the 1000-leaf tree",
    )
    torch = {
        k: s["torch_best_over_ours"]
        for k, s in by.items()
        if k[0] in LARGE and s["torch_best_over_ours"] is not None
    }
    if torch:
        low = min(torch, key=torch.__getitem__)
        out.append(
            (
                torch[low] >= 3,
                ">= 3x faster than torch.optim.RMSprop (best of foreach and for-loop) on the large "
                f"workloads (slowest {torch[low]:.2f}x on {low[0]}/{low[1]})",
            )
        )
    all_within(
        "ours/floor",
        {v: s["step_ours_over_floor"] for (w, v), s in by.items() if w == "single-16M"},
        1.2,
        "within 1.2x of the bandwidth floor on the 16M leaf",
    )
    # Light state: the 8-bit step against optax's float32 step with the same buffers.
    for variants_, limit, what in (
        (("int8",), 1.3, "8-bit v"),
        (tuple(EIGHT_BIT)[1:], 1.6, "every buffer in 8 bits"),
    ):
        all_within(
            "ours/optax",
            {f"{w}/{v}": s["step_ours_over_optax"] for (w, v), s in by.items() if v in variants_},
            limit,
            f"step time with {what} within {limit}x of optax's float32 step",
        )
    bytes_ratio = {}
    for (w, v), s in by.items():
        if (f32 := EIGHT_BIT.get(v)) and (w, f32) in by:
            light = s["bytes_per_param"]["ours"]
            full = min(by[w, f32]["bytes_per_param"]["ours"], s["bytes_per_param"]["optax"])
            bytes_ratio[f"{w}/{v} {light:.1f} vs {full:.1f} B/param,"] = light / full
    all_within(
        "8-bit vs float32",
        bytes_ratio,
        1.0 - 1e-9,
        "XLA's bytes accessed by the 8-bit step below those of the float32 step with the same "
        "buffers (the smaller of ours and optax's)",
    )
    return [{"met": bool(met), "text": text} for met, text in out]


def format_or_na(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def derive(payload: dict[str, Any]) -> dict[str, Any]:
    """Writes into ``payload`` what its raw samples give: each record's ``summary``, the copy
    bandwidth at the start, and the ``targets``."""
    copy = payload["meta"]["copy_bandwidth"]
    copy["gb_per_s"] = copy["bytes_moved"] / statistics.median(copy["times_s"]) / 1e9
    for record in payload["records"]:
        record["summary"] = summarize(record, copy["bytes_moved"])
    by = {(r["workload"], r["variant"]): r["summary"] for r in payload["records"]}
    payload["targets"] = targets(by) if by else []
    return payload


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
        record["page_faults_per_step"] = {name: page_faults(runners[name]) for name in txs}
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
    parser.add_argument("--derive", type=Path, help="only derive FILE's summaries and targets")
    args = parser.parse_args(argv)
    if args.derive:
        write_json(args.derive, derive(json.loads(args.derive.read_text())))
        print(f"wrote {args.derive}", file=sys.stderr)
        return 0
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
        write_json(
            path, derive(payload)
        )  # after every case: a run cut short keeps what it measured
        gc.collect()
    payload["meta"]["complete"] = len(payload["records"]) == len(cases)
    payload["meta"]["wall_s"] = time.perf_counter() - start
    info["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    write_json(path, derive(payload))
    print(f"wrote {path}", file=sys.stderr)
    if args.render:
        draw(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
