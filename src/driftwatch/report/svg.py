"""Geometry for the report's inline SVG trend charts (the template only draws what is computed here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    severity: str
    label: str


def sparkline(values: list[int], width: float = 120, height: float = 28, pad: float = 3) -> str:
    """SVG polyline points for a small line chart; a single run is drawn as a flat line."""
    if len(values) == 1:
        values = values * 2
    top = max(values) or 1
    step = (width - 2 * pad) / (len(values) - 1)
    points = (f"{pad + i * step:.1f},{height - pad - (v / top) * (height - 2 * pad):.1f}" for i, v in enumerate(values))
    return " ".join(points)


def stacked_bars(
    runs: list[str], counts: dict[str, list[int]], width: float = 640, height: float = 120, gap: float = 4
) -> list[Bar]:
    """One bar per run, stacked by severity in the order of `counts` (worst at the bottom)."""
    totals = [sum(per_run) for per_run in zip(*counts.values(), strict=True)] if counts else [0] * len(runs)
    top = max(totals, default=0) or 1
    slot = width / max(len(runs), 1)
    bar_width = min(48.0, slot - gap)
    bars = []
    for i, run in enumerate(runs):
        x = i * slot + (slot - bar_width) / 2
        base = height
        for severity, per_run in counts.items():
            h = per_run[i] / top * height
            if h:
                base -= h
                bars.append(Bar(x, base, bar_width, h, severity, f"{run}: {per_run[i]} {severity}"))
    return bars
