"""Reading what a /metrics endpoint serves (the Prometheus text format), for tests."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def samples(text: str) -> list[Sample]:
    """Every sample line of ``text`` (comments skipped)."""
    found = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            raise ValueError(f"not a sample line: {line!r}")
        labels = {
            key: value.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
            for key, value in _LABEL.findall(match["labels"] or "")
        }
        found.append(Sample(match["name"], labels, float(match["value"])))
    return found


def matching(text: str, name: str, **labels: str) -> list[Sample]:
    """The samples of series ``name`` whose labels include ``labels``."""
    return [
        sample
        for sample in samples(text)
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]


def total(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` with ``labels`` (0 when there is none)."""
    return sum(sample.value for sample in matching(text, name, **labels))
