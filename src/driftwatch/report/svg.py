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


@dataclass(frozen=True)
class LineChart:
    lines: dict[str, str]  # series name -> polyline points (runs without a value are skipped)
    top: float  # the value at the top of the chart
    objective_y: float | None  # where the objective's line is drawn, if one is set
    width: float
    height: float


def line_chart(
    series: dict[str, list[float | None]],
    *,
    objective: float | None = None,
    width: float = 320,
    height: float = 90,
    pad: float = 4,
) -> LineChart:
    """Several series over the same runs on one scale (the objective included, so its line shows)."""
    values = [v for values in series.values() for v in values if v is not None]
    top = max([*values, objective or 0, 0]) * 1.1 or 1.0
    count = max((len(v) for v in series.values()), default=1)
    step = (width - 2 * pad) / max(count - 1, 1)

    def y(value: float) -> float:
        return height - pad - value / top * (height - 2 * pad)

    lines = {}
    for name, points in series.items():
        drawn = [(pad + i * step, y(v)) for i, v in enumerate(points) if v is not None]
        if len(drawn) == 1:
            drawn.append((width - pad, drawn[0][1]))
        lines[name] = " ".join(f"{px:.1f},{py:.1f}" for px, py in drawn)
    return LineChart(lines, top, y(objective) if objective else None, width, height)
