"""Machine instructions per parameter in the compiled step: ours against optax.rmsprop.

    python benchmarks/instructions.py          # about a minute on a CPU

A deterministic measure beside the timings of ``run.py``: the same compiled code gives the
same count whatever else the machine is doing. For each float32 variant, ``jit(update +
apply_updates)`` of ours and of ``optax.rmsprop`` over one 4M-parameter leaf is compiled
with XLA's dump on; each kernel's object file is disassembled (``objdump``) and its hot loop
(the backward jump spanning the most vector instructions) counted, divided by the elements
one pass of the loop handles (from its index step and the addressing scale). The sum over
the step's kernels is instructions per parameter. CPU only (XLA:CPU writes object files);
the numbers depend on the CPU's vector extensions and on XLA's version.

Writes this machine's counts into ``benchmarks/results/instructions.json``, one run per set of
vector extensions (a run on other extensions is kept beside it), then ``render.py`` writes
``instructions.md``. ``tests/test_cost.py`` runs this script and checks that no variant's
count rose above the stored run for the same extensions and jax. Not a test module.
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
from machine import draw, machine_info, write_json  # noqa: E402
from step import jitted_step  # noqa: E402
from variants import VARIANTS  # noqa: E402

import optax_rmsprop  # noqa: E402

N = 1 << 22  # parameters: one float32 leaf
DECAY = 0.999
FLOAT32_VARIANTS = (
    "plain",
    "momentum",
    "nesterov",
    "centered",
    "centered+momentum",
    "eps_outside",
    "bias_correction",
    "bias_correction+eps_outside",
)
INSTRUCTION = re.compile(r"^\s+([0-9a-f]+):\t(\S+)\s*(.*)$")
JUMP = re.compile(r"^j\w+$")
INDEXED = re.compile(r"\(%\w+,%(\w+),([1248])\)")
STEP = re.compile(r"^\$(-?0x[0-9a-f]+),%(\w+)$")


def compile_named(name: str, lib: Any, kwargs: dict[str, Any]) -> None:
    tx = lib.rmsprop(1e-3, decay=DECAY, eps=1e-8, **kwargs)
    params = jax.ShapeDtypeStruct((N,), jnp.float32)
    step = jitted_step(tx, name)  # the dump's module is named after it
    step.lower(params, jax.eval_shape(tx.init, params), params).compile()


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument("--variants", nargs="+", choices=FLOAT32_VARIANTS, default=FLOAT32_VARIANTS)
    parser.add_argument("--no-render", dest="render", action="store_false")
    cfg = parser.parse_args(argv)
    if jax.default_backend() != "cpu":
        print("instructions.py counts XLA:CPU's object files: run it on the CPU", file=sys.stderr)
        return 1
    rows = []
    for variant in cfg.variants:
        key = re.sub(r"\W", "_", variant)
        for impl, lib in (("ours", optax_rmsprop), ("optax", optax)):
            compile_named(f"{impl}_{key}", lib, VARIANTS[variant])
        ours, theirs = count(f"ours_{key}"), count(f"optax_{key}")
        rows.append(
            {
                "variant": variant,
                "options": VARIANTS[variant],
                "ours": ours,
                "optax": theirs,
                "ours_over_optax": ours["per_param"] / theirs["per_param"],
            }
        )
        print(f"{variant}: ours {ours['per_param']:.3f}, optax {theirs['per_param']:.3f}")

    info = machine_info()
    path = cfg.out / "instructions.json"
    payload = json.loads(path.read_text()) if path.exists() else {}
    payload = {"benchmark": "instructions per parameter", "runs": payload.get("runs", {})}
    run = {"machine": info, "parameters": N, "decay": DECAY, "rows": rows}
    payload["runs"][info["vector_extensions"]] = run
    write_json(path, payload)
    print(f"wrote {path}")
    if cfg.render:
        draw(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
