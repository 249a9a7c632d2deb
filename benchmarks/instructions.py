"""Machine instructions per parameter in the compiled step: ours against optax.rmsprop.

    python benchmarks/instructions.py          # about a minute on a CPU

A deterministic measure beside the timings of ``run.py``: the same compiled code gives the
same count whatever else the machine is doing. For each float32 variant, ``jit(update +
apply_updates)`` of ours and of ``optax.rmsprop`` over one 4M-parameter leaf is compiled
with XLA's dump on; each kernel's object file is disassembled (``objdump``) and its hot loop
(the backward jump spanning the most vector instructions) counted, divided by the elements
one pass of the loop handles (from its index step and the addressing scale). The sum over
the step's kernels is instructions per parameter. CPU only (XLA:CPU writes object files);
the numbers depend on the CPU's vector extensions, which the report names.

Writes ``instructions.json`` and ``instructions.md`` into ``benchmarks/results/``.
Not a test module (pytest collects nothing here).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
DUMP = Path(tempfile.mkdtemp(prefix="optax_rmsprop-xla-dump-"))
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_dump_to={DUMP}".strip()

import jax  # noqa: E402 - after XLA_FLAGS
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from common import machine_info, machine_line  # noqa: E402

import optax_rmsprop  # noqa: E402

N = 1 << 22  # parameters: one float32 leaf
DECAY = 0.999
VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "momentum": {"momentum": 0.9},
    "nesterov": {"momentum": 0.9, "nesterov": True},
    "centered": {"centered": True},
    "centered+momentum": {"centered": True, "momentum": 0.9},
    "eps_outside": {"eps_in_sqrt": False},
    "bias_correction": {"bias_correction": True},
    "bias_correction+eps_outside": {"bias_correction": True, "eps_in_sqrt": False},
}
INSTRUCTION = re.compile(r"^\s+([0-9a-f]+):\t(\S+)\s*(.*)$")
JUMP = re.compile(r"^j\w+$")
INDEXED = re.compile(r"\(%\w+,%(\w+),([1248])\)")
STEP = re.compile(r"^\$(-?0x[0-9a-f]+),%(\w+)$")


def compile_step(name: str, lib: Any, kwargs: dict[str, Any]) -> None:
    tx = lib.rmsprop(1e-3, decay=DECAY, eps=1e-8, **kwargs)

    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    step.__name__ = name  # the dump's module is named after it
    params = jnp.zeros((N,), jnp.float32)
    jax.jit(step, donate_argnums=(0, 1)).lower(params, tx.init(params), params).compile()


def hot_loop(obj: Path) -> dict[str, Any] | None:
    """The loop of one kernel: instructions per pass, elements per pass."""
    command = ["objdump", "-d", "--no-show-raw-insn", str(obj)]
    asm = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rows = [m.groups() for m in map(INSTRUCTION.match, asm.splitlines()) if m]
    address = [int(a, 16) for a, _, _ in rows]
    best = None
    for i, (_, op, args) in enumerate(rows):
        if JUMP.match(op) and re.fullmatch(r"[0-9a-f]+( <.*>)?", args):
            target = int(args.split()[0], 16)
            if target < address[i] and target in address:
                body = rows[address.index(target) : i + 1]
                vector = sum("mm" in a for _, _, a in body)
                if best is None or vector > best[0]:
                    best = (vector, body)
    if best is None:
        return None
    body = best[1]
    scales = {}  # index register -> addressing scale
    for _, _, args in body:
        for reg, scale in INDEXED.findall(args):
            scales[reg] = int(scale)
    elements = None
    for _, op, args in body:
        m = STEP.match(args)
        if op in ("add", "sub") and m and m.group(2) in scales:
            value = int(m.group(1), 16)
            value = value - (1 << 64) if value >= 1 << 63 else value
            elements = abs(value) * scales[m.group(2)] // 4  # float32 elements
    if not elements:
        return None
    return {"instructions": len(body), "elements": elements}


def count(name: str) -> dict[str, Any]:
    modules = sorted(DUMP.glob(f"module_*.jit_{name}.obj-file.*.o"))
    kernels = {}
    for obj in modules:
        loop = hot_loop(obj)
        if loop is not None:
            kernel = obj.name.split(".obj-file.", 1)[1].removesuffix(".o")
            kernels[kernel] = {**loop, "per_param": loop["instructions"] / loop["elements"]}
    return {"kernels": kernels, "per_param": sum(k["per_param"] for k in kernels.values())}


def vector_extensions() -> str:
    try:
        flags = next(
            line.split(":", 1)[1].split()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("flags")
        )
    except (OSError, StopIteration):
        return "unknown"
    return ", ".join(f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f") if f in flags)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    cfg = parser.parse_args(argv)
    if jax.default_backend() != "cpu":
        print("instructions.py counts XLA:CPU's object files: run it on the CPU", file=sys.stderr)
        return 1
    rows = []
    for variant, kwargs in VARIANTS.items():
        key = re.sub(r"\W", "_", variant)
        for impl, lib in (("ours", optax_rmsprop), ("optax", optax)):
            compile_step(f"{impl}_{key}", lib, kwargs)
        ours, theirs = count(f"ours_{key}"), count(f"optax_{key}")
        rows.append({"variant": variant, "options": kwargs, "ours": ours, "optax": theirs})
        print(f"{variant}: ours {ours['per_param']:.3f}, optax {theirs['per_param']:.3f}")

    info = machine_info()
    info["vector_extensions"] = vector_extensions()
    lines = [
        "# Instructions per parameter in the compiled step",
        "",
        f"Machine: {machine_line(info)}; vector extensions: {info['vector_extensions']}.",
        f"`jit(update + apply_updates)` over one float32 leaf of {N} parameters, decay {DECAY}; "
        "each kernel's hot loop, instructions per element, summed over the step's kernels "
        "(`python benchmarks/instructions.py`).",
        "",
        "| variant | ours | optax | ours/optax | ours per kernel (largest first) "
        "| optax per kernel |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in rows:

        def kernels(c: dict[str, Any]) -> str:
            per_kernel = sorted((k["per_param"] for k in c["kernels"].values()), reverse=True)
            return ", ".join(f"{x:.2f}" for x in per_kernel)

        lines.append(
            f"| {r['variant']} | {r['ours']['per_param']:.3f} | {r['optax']['per_param']:.3f} "
            f"| {r['ours']['per_param'] / r['optax']['per_param']:.2f} | {kernels(r['ours'])} "
            f"| {kernels(r['optax'])} |"
        )
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "instructions.md").write_text("\n".join(lines) + "\n")
    payload = {"benchmark": "instructions per parameter", "machine": info, "rows": rows}
    (cfg.out / "instructions.json").write_text(json.dumps(payload, indent=1) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
