"""The overview's chart: daily volume and fees as an SVG drawn on the server.

No chart library, no script: the chart is part of the HTML, so it shows without JavaScript, prints,
and is read by screen readers through its title, description and the table beside it. Amounts
come as the API's decimal strings and are scaled with Decimal, never float money.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from html import escape
from typing import Any, Final

WIDTH: Final = 720
HEIGHT: Final = 240
_LEFT: Final = 64  # room for the axis labels
_BOTTOM: Final = 28
_TOP: Final = 12


@dataclass(frozen=True)
class ChartDay:
    date: str
    gross: Decimal
    fees: Decimal


def days_from(daily: Sequence[dict[str, Any]]) -> list[ChartDay]:
    return [
        ChartDay(row["date"], Decimal(row["gross_volume"]), Decimal(row["fees"])) for row in daily
    ]


def nice_ceiling(value: Decimal) -> Decimal:
    """The smallest of 1, 2, 2.5, 5 × 10^n at or above ``value`` (a readable axis top)."""
    if value <= 0:
        return Decimal(1)
    exponent = value.adjusted()
    for step in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10)):
        top = step.scaleb(exponent)
        if top >= value:
            return top
    return Decimal(10).scaleb(exponent)  # pragma: no cover - 10 × 10^n always reaches value


def _label(amount: Decimal) -> str:
    return f"{amount.normalize():,f}"


def volume_chart(days: Sequence[ChartDay], *, title: str) -> str:
    """Bars of gross volume per day with the fees drawn inside them, and a labelled axis."""
    plot_width = WIDTH - _LEFT - 8
    plot_height = HEIGHT - _TOP - _BOTTOM
    top = nice_ceiling(max((day.gross for day in days), default=Decimal(0)))
    slot = plot_width / max(len(days), 1)
    bar = max(slot * 0.7, 1.0)

    def y(amount: Decimal) -> float:
        return _TOP + plot_height - float(amount / top) * plot_height

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"'
        f' aria-labelledby="chart-title chart-desc" class="chart">',
        f'<title id="chart-title">{escape(title)}</title>',
        '<desc id="chart-desc">Bars: gross volume per UTC day; the darker part of each bar is'
        " the platform fee. The table below lists the same figures.</desc>",
    ]
    for fraction in (Decimal(0), Decimal("0.5"), Decimal(1)):
        level = y(top * fraction)
        parts.append(
            f'<line x1="{_LEFT}" x2="{WIDTH - 8}" y1="{level:.1f}" y2="{level:.1f}" class="grid"/>'
            f'<text x="{_LEFT - 6}" y="{level + 4:.1f}" text-anchor="end" class="axis">'
            f"{escape(_label(top * fraction))}</text>"
        )
    for index, day in enumerate(days):
        x = _LEFT + index * slot + (slot - bar) / 2
        gross_top, fee_top = y(day.gross), y(day.fees)
        base = _TOP + plot_height
        tip = escape(f"{day.date}: {_label(day.gross)} USDT gross, {_label(day.fees)} USDT fees")
        parts.append(
            f"<g><title>{tip}</title>"
            f'<rect x="{x:.1f}" y="{gross_top:.1f}" width="{bar:.1f}"'
            f' height="{base - gross_top:.1f}" class="gross"/>'
            f'<rect x="{x:.1f}" y="{fee_top:.1f}" width="{bar:.1f}"'
            f' height="{base - fee_top:.1f}" class="fees"/></g>'
        )
    # Date labels at the first, middle and last day: readable down to 360 px wide.
    for index in sorted({0, len(days) // 2, len(days) - 1}) if days else ():
        x = _LEFT + index * slot + slot / 2
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle" class="axis">'
            f"{escape(days[index].date[5:])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
