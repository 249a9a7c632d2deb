"""Markdown tables and plots from the benchmarks' JSON, and nothing else.

    python benchmarks/render.py                       # every known JSON in benchmarks/results/
    python benchmarks/render.py benchmarks/results/gpu   # another folder, or given files

``results.json`` (``run.py``) gives ``results.md``, ``step_time.png``, ``ratios.png`` and
``bandwidth.png``; ``instructions.json``, ``eager_step.json`` and ``light_state*.json`` give
the ``.md`` of the same name. The medians, ratios and verdicts are the measuring scripts',
written into the JSON beside the raw samples; this file only lays them out. The
deterministic targets (XLA's bytes and temporary memory, state bytes, instructions per
parameter) are tests: ``tests/test_cost.py``.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from machine import RESULTS, machine_line
from tabulate import tabulate

CONTENDERS = {  # the bar plots' series and colours
    "ours": "tab:blue",
    "optax": "tab:orange",
    "floor": "tab:gray",
    "torch foreach": "tab:green",
    "torch for-loop": "tab:olive",
}


def table(headers: list[str], rows: list[list[str]], align: str) -> str:
    """A Markdown table; ``align`` has an ``l`` or ``r`` per column."""
    columns = ["left" if a == "l" else "right" for a in align]
    return tabulate(rows, headers, tablefmt="pipe", colalign=columns, disable_numparse=True)


def fmt(x: float | None, spec: str) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


# ---------------------------------------------------------------------------
# results.json: the suite.

Summaries = dict[tuple[str, str], dict[str, Any]]


def suite_markdown(payload: dict[str, Any], by: Summaries) -> str:
    meta, info = payload["meta"], payload["machine"]
    copy_gbs = meta["copy_bandwidth"]["gb_per_s"]
    done = len(by)
    partial = "" if meta.get("complete", True) else f" Incomplete: {done} of its cases ran."
    torch = {
        "cpu": "torch runs on the CPU, float32 state only, with the faster of its default "
        f"thread count and 1 thread (per workload: {meta['torch_threads']}).",
        "cuda": "torch runs on the GPU (CUDA), float32 state only.",
        None: "torch was not run.",
    }[meta.get("torch_device", "cpu")]
    header = [
        "# optax_rmsprop benchmarks",
        "",
        f"Machine: {machine_line(info)}.",
        f"Device copy bandwidth (donated `x + 1`, 256 MiB, read + write): {copy_gbs:.1f} GB/s "
        "at the start; each case measures it again in its own rounds (column copy GB/s).",
        f"Mode: {meta['mode']}; {meta['rounds']} interleaved rounds for step times, "
        f"{meta['eager_rounds']} for eager, {meta['compile_reps']} compile repetitions; "
        f"medians, and ratios of medians. Wall time {meta['wall_s']:.0f} s.{partial}",
        "Reference for the 8-bit and bfloat16 variants is optax's `rmsprop` with the same "
        f"options, in float32. {torch}",
        "Each step is compiled twice, each copy with buffers of its own (where a copy's buffers "
        "lie moves its time by a few per cent for the whole run): ours (ms) and optax (ms) are "
        "the mean of the two copies' medians, ours/optax the ratio of those sums; in brackets, "
        "the 25th and 75th percentiles of the per-round ratios. A/A: each implementation's "
        "second copy over its first (ours, optax), the noise of the ratio itself. The order of "
        "the runners is shuffled each round.",
        "floor: a jitted kernel moving the bytes our step must move "
        "(read p, g and the state; write p and the state). % of limit: the bytes each step must "
        "move (its own state: optax's and torch's are float32) over its time, as a fraction of "
        "the copy bandwidth (above 100% where arrays stay in cache).",
    ]
    step, cost, compile_, names = [], [], [], []
    faults = all(s.get("page_faults_per_step") for s in by.values())  # older runs lack them
    for (w, v), s in by.items():
        ms, limit, aa = s["step_ms"], s["useful_bandwidth_fraction"], s["step_aa"]
        q = s["step_ratio_per_round_quartiles"]
        names.append([w, v])
        step.append(
            [
                f"{ms['ours']:.2f}",
                f"{ms['optax']:.2f}",
                f"{s['step_ours_over_optax']:.2f} ({q[0]:.2f}–{q[1]:.2f})",
                f"{aa['ours']:.2f}, {aa['optax']:.2f}",
                f"{ms['floor']:.2f}",
                f"{s['step_ours_over_floor']:.2f}",
                fmt(ms.get("torch foreach"), ".2f"),
                fmt(ms.get("torch for-loop"), ".2f"),
                fmt(s["torch_best_over_ours"], ".2f"),
                f"{100 * limit['ours']:.0f}%",
                f"{100 * limit['optax']:.0f}%",
                f"{100 * limit['floor']:.0f}%",
                f"{s['copy_gb_per_s']:.1f}",
            ]
        )
        b, t, st = s["bytes_per_param"], s["temp_mib"], s["state_bytes_per_param"]
        cost.append(
            [f"{b['ours']:.2f}", f"{b['optax']:.2f}", f"{b['floor']:.2f}"]
            + [f"{s['bytes_ours_minus_optax']:+.0f}", f"{t['ours']:.2f}", f"{t['optax']:.2f}"]
            + [f"{st['ours']:.3f}", f"{st['optax']:.3f}"]
            + ([f"{s['page_faults_per_step'][k]:.0f}" for k in ("ours", "optax")] if faults else [])
        )
        c, tr, e = s["compile_s"], s["trace_s"], s["eager_ms"]
        compile_.append(
            [f"{c['ours']:.3f}", f"{c['optax']:.3f}", f"{s['compile_ours_over_optax']:.2f}"]
            + [f"{tr['ours']:.3f}", f"{tr['optax']:.3f}", f"{e['ours']:.2f}", f"{e['optax']:.2f}"]
            + [f"{s['eager_speedup']:.1f}x", fmt(e.get("fresh"), ".2f")]
            + [fmt(s["eager_ours_over_fresh"], ".2f")]
        )

    def section(title: str, headers: list[str], rows: list[list[str]]) -> list[str]:
        cells = [n + r for n, r in zip(names, rows, strict=True)]
        align = "ll" + "r" * len(headers)
        return ["", f"## {title}", "", table(["workload", "variant", *headers], cells, align)]

    lines = header + section(
        "Step time: `jit(update + apply_updates)`, params and state donated",
        ["ours (ms)", "optax (ms)", "ours/optax", "A/A ours, optax", "floor (ms)", "ours/floor"]
        + ["torch foreach (ms)", "torch for-loop (ms)", "torch best/ours", "% of limit: ours"]
        + ["optax", "floor", "copy GB/s"],
        step,
    )
    lines += section(
        "Cost: XLA's bytes accessed per parameter, compiled temporary memory, state size",
        ["bytes/param ours", "optax", "floor", "ours - optax (bytes)", "temp MiB ours", "optax"]
        + ["state bytes/param ours", "optax"]
        + (["page faults/step ours", "optax"] if faults else []),
        cost,
    )
    lines += section(
        "Compile time (trace + lower + compile) and eager `update`",
        ["compile ours (s)", "optax (s)", "ours/optax", "trace ours (s)", "optax (s)"]
        + ["eager ours (ms)", "optax (ms)", "eager speed-up", "fresh buffers (ms)", "ours/fresh"],
        compile_,
    )
    lines += ["", "## Targets", ""]
    lines += [f"- {'met' if t['met'] else 'NOT met'}: {t['text']}" for t in payload["targets"]]
    lines += [
        "",
        "The deterministic targets (XLA bytes accessed ours <= optax's but for 64 bytes, "
        "temporary memory, state bytes per parameter, instructions per parameter) are tests "
        "in `tests/test_cost.py`.",
    ]
    return "\n".join(lines) + "\n"


def plots(by: Summaries, info: dict[str, Any], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(w for w, _ in by))
    variants = list(dict.fromkeys(v for _, v in by))

    def save(fig: Any, title: str, name: str) -> Path:
        fig.suptitle(title)
        fig.text(0.5, 0.005, machine_line(info), ha="center", fontsize=7)
        fig.tight_layout(rect=(0, 0.03, 1, 1))
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        return out / name

    def bars(key: str, ylabel: str, title: str, name: str, line: float | None) -> Path:
        """Grouped bars per workload: one group per variant, one bar per contender."""
        fig, axes = plt.subplots(1, len(workloads), figsize=(4.2 * len(workloads), 4.6))
        for ax, w in zip(np.atleast_1d(axes), workloads, strict=True):
            x, width = np.arange(len(variants)), 0.8 / len(CONTENDERS)
            for i, (c, color) in enumerate(CONTENDERS.items()):
                ys = [by.get((w, v), {}).get(key, {}).get(c, np.nan) for v in variants]
                ax.bar(x + (i - 2) * width, ys, width, label=c, color=color)
            if line is not None:
                ax.axhline(line, color="k", lw=0.8, ls="--")
            ax.set_xticks(x, variants, rotation=30, ha="right", fontsize=8)
            ax.set_title(w)
            ax.set_ylabel(ylabel)
            ax.grid(axis="y", alpha=0.3)
        np.atleast_1d(axes)[0].legend(fontsize=8)
        return save(fig, title, name)

    paths = [
        bars(
            "step_ms",
            "ms per step",
            "Step time: jit(update + apply_updates), donated",
            "step_time.png",
            None,
        )
    ]

    panels: list[tuple[str, Callable[[dict[str, Any]], float], str, float]] = [
        ("step time ours / optax (< 1: ours faster)", lambda s: s["step_ours_over_optax"], "_r", 1),
        ("XLA bytes/param ours / optax", lambda s: s["bytes_ours_over_optax"], "_r", 1),
        ("compile time ours / optax", lambda s: s["compile_ours_over_optax"], "_r", 1),
        ("eager update: optax / ours (speed-up)", lambda s: s["eager_speedup"], "", 5),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5))
    for ax, (title, value, reverse, center) in zip(axes.flat, panels, strict=True):
        grid = np.array(
            [[value(by[w, v]) if (w, v) in by else np.nan for v in variants] for w in workloads]
        )
        log = np.log(grid / center)
        bound = max(np.nanmax(np.abs(log)), 0.05)
        ax.imshow(log, cmap="RdYlGn" + reverse, vmin=-bound, vmax=bound, aspect="auto")
        for (i, j), x in np.ndenumerate(grid):
            ax.text(j, i, f"{x:.2f}", ha="center", va="center", fontsize=9)
        ax.set_xticks(range(len(variants)), variants, rotation=20, ha="right", fontsize=8)
        ax.set_yticks(range(len(workloads)), workloads, fontsize=8)
        ax.set_title(title, fontsize=10)
    paths.append(
        save(fig, "optax_rmsprop against optax.rmsprop (same process, interleaved)", "ratios.png")
    )
    paths.append(
        bars(
            "useful_bandwidth_fraction",
            "bytes it must move / time / copy BW",
            "How close to the memory-bandwidth limit (1 = moving the minimum bytes at copy speed)",
            "bandwidth.png",
            1.0,
        )
    )
    return paths


def render_suite(path: Path) -> list[Path]:
    payload = json.loads(path.read_text())
    by = {(r["workload"], r["variant"]): r["summary"] for r in payload["records"]}
    if not by:
        return []
    (path.parent / "results.md").write_text(suite_markdown(payload, by))
    return [path.parent / "results.md", *plots(by, payload["machine"], path.parent)]


# ---------------------------------------------------------------------------
# The other benchmarks' JSON.


def instructions_markdown(payload: dict[str, Any]) -> str:
    lines = ["# Instructions per parameter in the compiled step"]
    for extensions, run in payload["runs"].items():

        def kernels(count: dict[str, Any]) -> str:
            per_kernel = sorted((k["per_param"] for k in count["kernels"].values()), reverse=True)
            return ", ".join(f"{x:.2f}" for x in per_kernel)

        rows = [
            [r["variant"], f"{r['ours']['per_param']:.3f}", f"{r['optax']['per_param']:.3f}"]
            + [f"{r['ours_over_optax']:.2f}"]
            + [kernels(r["ours"]), kernels(r["optax"])]
            for r in run["rows"]
        ]
        lines += [
            "",
            f"## Vector extensions: {extensions}",
            "",
            f"Machine: {machine_line(run['machine'])}.",
            f"`jit(update + apply_updates)` over one float32 leaf of {run['parameters']} "
            f"parameters, decay {run['decay']}; each kernel's hot loop, instructions per element, "
            "summed over the step's kernels (`python benchmarks/instructions.py`).",
            "",
            table(
                ["variant", "ours", "optax", "ours/optax", "ours per kernel (largest first)"]
                + ["optax per kernel"],
                rows,
                "lrrrll",
            ),
        ]
    return "\n".join(lines) + "\n"


def eager_markdown(payload: dict[str, Any]) -> str:
    tree, protocol = payload["tree"], payload["protocol"]
    rows = []
    for name, result in payload["results"].items():
        m = result["median_s"]
        rows.append(
            [name, f"{m['optax_rmsprop eager'] * 1e6:.0f}", f"{m['optax eager'] * 1e6:.0f}"]
            + [f"{result['speedup']:.1f}x", f"{m['optax jit'] * 1e6:.0f}"]
        )
    headers = ["variant", "optax_rmsprop eager (µs)", "optax.rmsprop eager (µs)", "speed-up"]
    return (
        "\n".join(
            [
                "# Eager `update`: optax_rmsprop against optax.rmsprop",
                "",
                f"Machine: {machine_line(payload['machine'])}.",
                f"An MLP tree: {tree['layers']} dense layers of width {tree['width']}, "
                f"{tree['leaves']} leaves, {tree['parameters']} float32 parameters; median of "
                f"{protocol['rounds']} interleaved rounds of {protocol['calls_per_round']} calls "
                "(`python benchmarks/eager_step.py`).",
                "",
                table([*headers, "optax.rmsprop under jit (µs)"], rows, "lrrrr"),
            ]
        )
        + "\n"
    )


def light_state_markdown(results: dict[str, Any]) -> str:
    """Draws ``light_state.json``: the gaps and their verdicts were computed where measured."""
    rows = []
    for name, problem in results["problems"].items():
        for storage, row in problem["states"].items():
            accuracy = row["metrics_mean"].get("test_accuracy")
            extra = f" (test acc. {accuracy:.4f})" if accuracy is not None else ""
            if storage == "float32":
                gap, verdict = "—", "—"
            else:
                gap = f"{100 * row['gap_to_float32']:+.2f}% ± {100 * row['gap_to_float32_se']:.2f}%"
                verdict = "within noise" if row["within_noise"] else "**beyond noise**"
            rows.append(
                [name, storage, f"{row['mean']:.5f} ± {row['std']:.5f}{extra}", gap, verdict]
                + [f"{row['bytes_per_param']:.3f}", str(row["quantized_leaves"])]
            )
    memory = results["memory"]
    columns = list(next(iter(memory["ours"].values())).keys())
    published = list(next(iter(memory["published"].values())).keys())
    memory_rows = [
        [variant]
        + [fmt(row[c], ".3f") for c in columns]
        + [fmt(memory["published"][variant][c], ".3f") for c in published]
        for variant, row in memory["ours"].items()
    ]
    four_bit = [
        f"* **{v['storage']}**: "
        + (
            "within noise on every problem"
            if v["ships"]
            else "beyond noise on " + ", ".join(v["beyond_noise"])
        )
        for v in results["four_bit"].values()
    ]
    lines = [
        "# Light optimizer state: final loss and memory",
        "",
        f"Machine: {machine_line(results['machine'])}. "
        f"Produced by `python benchmarks/light_state.py{' --quick' if results['quick'] else ''}`"
        f" in {results['seconds']:.0f} s.",
        "",
        "Mean final loss over seeds (± standard deviation across seeds); the gap of the mean to "
        "float32 state's, ± its standard error from the seeds' spread; *within noise* where the "
        "gap is within 2 standard errors; the optimizer state's bytes per parameter (n/a in the "
        "table below: the same as without b/m̄). 4-bit v is measured, not shipped: v rounded "
        "through 4-bit codes after every step.",
        "",
        table(
            [
                "problem",
                "state",
                "final loss",
                "gap to float32",
                "verdict",
                "state bytes/param",
                "8-bit leaves",
            ],
            rows,
            "lllllll",
        ),
        "",
        "4-bit v, by scheme:",
        "",
        *four_bit,
        "",
        "Problems:",
        "",
    ]
    lines += [
        f"* **{name}**: {p['description']}; {p['seeds']} seeds, {p['steps']} steps."
        for name, p in results["problems"].items()
    ]
    lines += [
        "",
        f"State bytes per parameter for a {memory['num_params'] / 1e9:.2f}B-parameter "
        "float32 model (transformer shapes, `state_size` on `jax.ShapeDtypeStruct`s; 4-bit v "
        "counted as half a byte a value and a float32 scale per block of 128), beside the "
        "same buffers in bitsandbytes' and torchao's formats (a code per value and a float32 "
        "scale per block: 256 values in 8 bits, 128 in 4 bits; n/a: no centered RMSProp):",
        "",
        table(
            ["variant", *columns, *published],
            memory_rows,
            "l" * (1 + len(columns) + len(published)),
        ),
    ]
    return "\n".join(lines) + "\n"


MARKDOWN: dict[str, Callable[[dict[str, Any]], str]] = {
    "instructions per parameter": instructions_markdown,
    "eager_step": eager_markdown,
    "light_state": light_state_markdown,
}


def render(path: Path) -> list[Path]:
    """Writes what ``path`` (a benchmark's JSON) renders to, beside it; returns those paths."""
    payload = json.loads(path.read_text())
    if payload.get("benchmark") == "optax_rmsprop suite":
        return render_suite(path)
    if payload.get("benchmark") not in MARKDOWN:
        return []  # soak.json and the like: nothing to render
    out = path.with_suffix(".md")
    out.write_text(MARKDOWN[payload["benchmark"]](payload))
    return [out]


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or [RESULTS]
    files = [f for p in paths for f in (sorted(p.glob("*.json")) if p.is_dir() else [p])]
    for f in files:
        for written in render(f):
            print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
