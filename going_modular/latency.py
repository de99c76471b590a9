# Written by notebooks/09_pytorch_model_deployment.ipynb: edit the notebook, not this file.
"""Measure a model the way deployment sees it: latency percentiles after a warm-up, parameters, size on disk.

    latency = measure_latency(lambda: model(image), threads=1)   # p50 / p95 over timed calls
    print(latency, latency.per_second, count_parameters(model), size_mb("model.pth"))
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class Latency:
    """Seconds per call over repeated runs: the median, the 95th percentile, the mean, and every time."""

    p50: float
    p95: float
    mean: float
    runs: int
    threads: int
    times: tuple[float, ...] = field(default=(), repr=False)

    @property
    def per_second(self) -> float:
        """Calls per second at the median latency (1 / p50)."""
        return 1.0 / self.p50

    def __str__(self) -> str:
        return (f"p50 {self.p50 * 1000:.1f} ms, p95 {self.p95 * 1000:.1f} ms "
                f"({self.per_second:.0f}/s at p50; {self.runs} runs, {self.threads} thread(s))")


def measure_latency(fn: Callable[[], object], *, warmup: int = 5, runs: int = 30,
                    threads: int | None = None) -> Latency:
    """Time `fn()` `runs` times after `warmup` untimed calls.

    Args:
        fn: What one prediction costs, e.g. `lambda: model(image)` or `lambda: predict(path)`.
        warmup: Calls before timing (first calls allocate memory, pick kernels, fill caches).
        runs: Timed calls; p50/p95 are taken over these.
        threads: PyTorch's intra-op thread count while timing (restored afterwards); None keeps
            the current one. For onnxruntime, set threads on the session (`onnx_export.onnx_session`).

    Raises:
        ValueError: `runs` < 1 or `warmup` < 0.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs={runs} and warmup={warmup}: need runs >= 1 and warmup >= 0.")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
    p50, p95 = np.percentile(times, [50, 95])
    return Latency(float(p50), float(p95), statistics.fmean(times), runs, threads or before, tuple(times))


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def size_mb(path: str | Path) -> float:
    """Size of a file in MB (2**20 bytes, as the original course counts)."""
    return Path(path).stat().st_size / 2**20


def compare_latency(baseline: Callable[[], object], candidate: Callable[[], object], *, rounds: int = 5,
                    runs: int = 10, warmup: int = 2, threads: int | None = None) -> tuple[Latency, Latency, list[float]]:
    """Time `baseline` and `candidate` in alternating rounds; return both and the speed-up of each round.

    On a machine that other programs share, the load changes from second to second. Timing the two
    one after the other in every round exposes both to the same load; the spread of the per-round
    speed-ups (baseline p50 / candidate p50) shows how much of a difference is noise.

    Returns:
        (baseline latency, candidate latency, [speed-up of round 1, ..., round `rounds`]); each
        latency pools the times of every round.
    """
    if rounds < 1:
        raise ValueError(f"rounds={rounds}: need at least one round.")
    base_rounds, cand_rounds = [], []
    for _ in range(rounds):
        base_rounds.append(measure_latency(baseline, warmup=warmup, runs=runs, threads=threads))
        cand_rounds.append(measure_latency(candidate, warmup=warmup, runs=runs, threads=threads))
    speedups = [b.p50 / c.p50 for b, c in zip(base_rounds, cand_rounds)]
    return _pooled(base_rounds), _pooled(cand_rounds), speedups


def _pooled(latencies: list[Latency]) -> Latency:
    times = [t for latency in latencies for t in latency.times]
    p50, p95 = np.percentile(times, [50, 95])
    return Latency(float(p50), float(p95), statistics.fmean(times), len(times), latencies[0].threads, tuple(times))
