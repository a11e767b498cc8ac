"""Lay out the sessions overview's bar charts, drawn as SVG on the server: no script, readable without one."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT, LABEL_SPACE = 600, 140, 18
# Room above the tallest bar for its value, and the widest a bar gets.
TOP_SPACE, MAX_BAR_WIDTH = 14, 48


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    x: float
    y: float
    width: float
    height: float

    @property
    def value_y(self) -> float:
        return self.y - 3


@dataclass(frozen=True)
class BarChart:
    title: str
    bars: list[Bar]
    peak: int
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def total(self) -> int:
        return sum(bar.value for bar in self.bars)


def bar_chart(title: str, points: list[tuple[str, int]], *, width: int = WIDTH, height: int = HEIGHT) -> BarChart:
    """Return bars for ``points`` (label, value), scaled so the tallest fills the plot above the labels."""
    peak = max((value for _, value in points), default=0)
    baseline = height - LABEL_SPACE
    slot = width / max(len(points), 1)
    bar_width = min(slot * 0.8, MAX_BAR_WIDTH)
    bars = []
    for index, (label, value) in enumerate(points):
        bar_height = (baseline - TOP_SPACE) * value / peak if peak else 0
        x = index * slot + (slot - bar_width) / 2
        bars.append(Bar(label, value, x, baseline - bar_height, bar_width, bar_height))
    return BarChart(title, bars, peak, width, height)
