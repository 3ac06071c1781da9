"""Charts drawn on the server as SVG shapes (no script, no other host): the geometry here,
the markup in the templates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH, HEIGHT, GAP = 300, 60, 1


@dataclass(frozen=True)
class Bar:
    """One bar: where it stands, and what it says on hover."""

    x: float
    y: float
    width: float
    height: float
    title: str


def bars(values: Sequence[float], titles: Sequence[str], width: int = WIDTH,
         height: int = HEIGHT) -> list[Bar]:
    """Bars for the values, scaled so the largest fills the height (none when all are 0)."""
    top = max(values, default=0)
    if not values:
        return []
    step = width / len(values)
    return [Bar(round(i * step, 2), round(height - height * v / top, 2) if top else height,
                round(max(step - GAP, 1), 2), round(height * v / top, 2) if top else 0, title)
            for i, (v, title) in enumerate(zip(values, titles, strict=True))]


def duration(seconds: float | None) -> str:
    """A duration as people read it (2 h 5 min, 3 d 4 h), or a dash when there is none."""
    if seconds is None:
        return "—"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{minutes} min" if minutes else f"{int(seconds)} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
