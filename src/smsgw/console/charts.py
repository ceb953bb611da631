"""Charts drawn on the server as SVG: no script, so they render under the console's
Content-Security-Policy and without a network."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class LineChart:
    width: int
    height: int
    points: str  # the polyline's "x,y x,y ..." in the SVG's coordinates
    low: int  # the values at the bottom and top of the drawing
    high: int
    start: int | None  # the times at its left and right ends
    end: int | None


def line_chart(series: Sequence[tuple[int, int]], width: int = 600, height: int = 160, margin: int = 4) -> LineChart:
    """A step line through (time, value) points, scaled to fill the drawing; a flat series
    sits in the middle, one point is a level line."""
    if not series:
        return LineChart(width, height, "", 0, 0, None, None)
    times = [t for t, _ in series]
    values = [v for _, v in series]
    low, high = min(values), max(values)
    start, end = times[0], times[-1]

    def x(t: int) -> float:
        return margin + (width - 2 * margin) * ((t - start) / (end - start) if end > start else 0.0)

    def y(v: int) -> float:
        if high == low:
            return height / 2
        return height - margin - (height - 2 * margin) * (v - low) / (high - low)

    coordinates: list[tuple[float, float]] = []
    for index, (t, v) in enumerate(series):
        if index:
            coordinates.append((x(t), coordinates[-1][1]))  # the balance holds until the entry
        coordinates.append((x(t), y(v)))
    if len(series) == 1:
        coordinates.append((width - margin, y(values[0])))
    return LineChart(width, height, " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coordinates), low, high, start, end)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int


def bar_chart(bars: Sequence[tuple[str, int]], width: int = 600, height: int = 160, gap: float = 2.0) -> list[Bar]:
    """One bar per (label, value), side by side, the highest reaching the top."""
    if not bars:
        return []
    top = max(value for _, value in bars) or 1
    step = width / len(bars)
    drawn = []
    for index, (label, value) in enumerate(bars):
        tall = height * value / top
        drawn.append(Bar(round(index * step + gap / 2, 1), round(height - tall, 1), round(max(step - gap, 1.0), 1), round(tall, 1), label, value))
    return drawn
