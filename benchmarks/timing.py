"""Interleaved timing. Timings are noisy on a shared machine, so contenders run in the
same process, interleaved in rounds (the order reverses every round, or is shuffled), and
results are compared as ratios of medians over rounds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

Runner = Callable[[int], float]  # runs n calls, returns seconds per call


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
