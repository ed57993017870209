"""Percentiles over latency samples."""

from __future__ import annotations

import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class LatencySummary:
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> LatencySummary:
        if len(seconds) < 2:
            raise ValueError("need at least two samples")
        ms = [s * 1000 for s in seconds]
        cuts = statistics.quantiles(ms, n=100, method="inclusive")
        return cls(
            count=len(ms),
            p50_ms=statistics.median(ms),
            p95_ms=cuts[94],
            p99_ms=cuts[98],
            mean_ms=statistics.fmean(ms),
        )
