"""The Vital signs feature: one card per indicator (value, status, a sparkline with its
forecast band, change against the baseline), and the fingerprint that redraws them.

The cards are pure functions of :class:`ops.signs.indicators.IndicatorReading`; the
callback reads ``services.signs`` (None when the city declares no indicators).
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from dash import Dash, Input, Output, dcc, html, no_update

from callbacks import ids
from callbacks.common import data_attrs, format_span, format_time, tab
from config.i18n import t
from ops.signs.forecast import Forecast
from ops.signs.indicators import IndicatorReading
from ops.signs.settings import Thresholds

if TYPE_CHECKING:
    from services import Services

#: Colours of the sparkline image (an <img> cannot see the page's CSS variables).
SPARK_COLOURS: dict[str, dict[str, str]] = {
    "dark": {"line": "#38bdf8", "band": "rgba(56,189,248,0.22)", "mean": "#7dd3fc",
             "now": "rgba(138,160,191,0.55)", "ok": "#34d399", "warn": "#fbbf24",
             "alarm": "#f87171", "unknown": "#8b95a7"},
    "light": {"line": "#0369a1", "band": "rgba(3,105,161,0.18)", "mean": "#0284c7",
              "now": "rgba(76,93,117,0.5)", "ok": "#047857", "warn": "#b45309",
              "alarm": "#b91c1c", "unknown": "#64748b"},
}
SPARK_WIDTH, SPARK_HEIGHT, SPARK_PAD = 240, 52, 3.0


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def sparkline_svg(times: Sequence[datetime], values: Sequence[float], *,
                  forecast: Forecast | None = None, thresholds: Thresholds | None = None,
                  status: str = "ok", theme: str = "dark", width: int = SPARK_WIDTH,
                  height: int = SPARK_HEIGHT) -> str:
    """A sparkline as SVG text: the series, its forecast band and mean ahead, the
    thresholds as dashed lines and the current value as a dot in the status colour.

    Unknown values (NaN) break the line instead of being drawn as zero. The SVG holds
    numbers only (no text), so it is safe to show as an image.
    """
    colours = SPARK_COLOURS.get(theme, SPARK_COLOURS["dark"])
    stamps = [_ns(t) for t in times]
    ahead = [_ns(t) for t in forecast.times] if forecast is not None else []
    xs = stamps + ahead
    ys = [v for v in values if _finite(v)]
    if forecast is not None:
        ys += [v for v in (*forecast.lower, *forecast.upper, *forecast.mean) if _finite(v)]
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" preserveAspectRatio="none">')
    if not xs or not ys:
        mid = height / 2
        return (head + f'<line x1="0" y1="{mid}" x2="{width}" y2="{mid}" '
                f'stroke="{colours["unknown"]}" stroke-dasharray="3 3"/></svg>')
    low, high = min(ys), max(ys)
    spread = (high - low) or max(abs(high), 1.0)
    levels = []
    if thresholds is not None:
        for name in ("warn", "alarm"):
            level = getattr(thresholds, name)
            # A level far outside the data would flatten the line: drawn only when near.
            if _finite(level) and low - spread <= level <= high + spread:
                levels.append((name, float(level)))
                low, high = min(low, level), max(high, level)
    if high == low:
        low, high = low - 1.0, high + 1.0
    x0, x1 = min(xs), max(xs)
    span_x = (x1 - x0) or 1.0

    def x(stamp: float) -> float:
        return round(SPARK_PAD + (stamp - x0) / span_x * (width - 2 * SPARK_PAD), 1)

    def y(value: float) -> float:
        return round(height - SPARK_PAD - (value - low) / (high - low) * (height - 2 * SPARK_PAD), 1)

    parts = [head]
    for name, level in levels:
        parts.append(f'<line x1="0" y1="{y(level)}" x2="{width}" y2="{y(level)}" '
                     f'stroke="{colours[name]}" stroke-width="1" stroke-dasharray="4 3"/>')
    last = next(((s, v) for s, v in zip(reversed(stamps), reversed(values), strict=True)
                 if _finite(v)), None)
    if forecast is not None and ahead:
        band = [(a, lo, up) for a, lo, up in zip(ahead, forecast.lower, forecast.upper,
                                                 strict=True) if _finite(lo) and _finite(up)]
        start = [(last[0], last[1], last[1])] if last else []
        band = start + band
        if len(band) > 1:
            outline = [f"{x(a)},{y(up)}" for a, _, up in band] + \
                [f"{x(a)},{y(lo)}" for a, lo, _ in reversed(band)]
            parts.append(f'<polygon points="{" ".join(outline)}" fill="{colours["band"]}"/>')
        means = ([(last[0], last[1])] if last else []) + \
            [(a, m) for a, m in zip(ahead, forecast.mean, strict=True) if _finite(m)]
        if len(means) > 1:
            parts.append(f'<polyline points="{" ".join(f"{x(a)},{y(m)}" for a, m in means)}" '
                         f'fill="none" stroke="{colours["mean"]}" stroke-width="1.5" '
                         'stroke-dasharray="3 2"/>')
    if last is not None and ahead:
        parts.append(f'<line x1="{x(last[0])}" y1="0" x2="{x(last[0])}" y2="{height}" '
                     f'stroke="{colours["now"]}" stroke-width="1"/>')
    segment: list[str] = []
    segments: list[list[str]] = []
    for stamp, value in zip(stamps, values, strict=True):
        if _finite(value):
            segment.append(f"{x(stamp)},{y(value)}")
        elif segment:
            segments.append(segment)
            segment = []
    if segment:
        segments.append(segment)
    for points in segments:
        if len(points) == 1:
            cx, cy = points[0].split(",")
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="1.5" fill="{colours["line"]}"/>')
        else:
            parts.append(f'<polyline points="{" ".join(points)}" fill="none" '
                         f'stroke="{colours["line"]}" stroke-width="1.8" '
                         'stroke-linejoin="round"/>')
    if last is not None:
        parts.append(f'<circle cx="{x(last[0])}" cy="{y(last[1])}" r="3" '
                     f'fill="{colours.get(status, colours["unknown"])}"/>')
    parts.append("</svg>")
    return "".join(parts)


def _ns(moment: datetime) -> float:
    return moment.timestamp() * 1e9


def svg_data_uri(svg: str) -> str:
    """An SVG as a ``data:`` URL for an <img> (which never runs scripts or fetches)."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def format_value(value: float | None, decimals: int) -> str:
    return f"{value:,.{decimals}f}" if _finite(value) else "—"


def change_text(change_pct: float | None, baseline_kind: str, language: str
                ) -> tuple[str, str]:
    """(text, CSS class) of the change against the baseline: ``↑ 15% vs rolling mean``."""
    if baseline_kind == "none" or not _finite(change_pct):
        return "", ""
    assert change_pct is not None
    against = t(f"signs.baseline.{baseline_kind}", language)
    if abs(change_pct) < 0.05:
        return f"→ 0% {against}", "ops-flat"
    arrow, tone = ("↑", "ops-up") if change_pct > 0 else ("↓", "ops-down")
    return f"{arrow} {abs(change_pct):.0f}% {against}", tone


def skill_text(predicted: Forecast, language: str) -> tuple[str, str]:
    """The forecast's skill at its last step against its baseline, and a tone class.

    ``skill +23% vs persistence``; ``no skill: not better than persistence`` (the
    forecast rule does not fire on it); ``forecast not backtested``; ``backtest pending``
    (the first backtest is still running in the background).
    """
    if predicted.pending:
        return t("signs.pending", language), "ops-flat"
    if not predicted.skill or not predicted.baseline:
        return t("signs.untested", language), "ops-flat"
    skill, base = predicted.skill[-1], predicted.baseline[-1]
    baseline = t(f"signs.model.{base}", language)
    if not _finite(skill):
        return t("signs.untested", language), "ops-flat"
    if skill <= 0:
        return t("signs.no_skill", language, baseline=baseline), "ops-flat"
    return t("signs.skill", language, skill=f"{skill:+.0%}", baseline=baseline), "ops-up"


def skill_span(predicted: Forecast, hours: float, decimals: int, language: str) -> html.Span:
    """:func:`skill_text` as a chip; its tooltip gives each model's backtest MAE there."""
    text, tone = skill_text(predicted, language)
    tested = predicted.backtest
    detail = None
    if tested is not None:
        maes = ", ".join(f"{t(f'signs.model.{name}', language)} {format_value(mae[-1], decimals + 1)}"
                         for name, mae in tested.mae.items())
        detail = t("signs.skill_detail", language, origins=len(tested.origins),
                   span=format_span(hours, language), maes=maes)
    return html.Span(text, className=f"ops-sign-skill {tone}", title=detail,
                     **data_attrs({"data-skill": "" if not predicted.skill
                                   or not _finite(predicted.skill[-1])
                                   else str(round(predicted.skill[-1], 4))}))


def sign_card(reading: IndicatorReading, language: str, theme: str,
              zone: ZoneInfo | None = None, as_of: Any = None) -> html.Div:
    """One vital sign: value and unit, status colour, sparkline with forecast, change.

    A reading whose time is not the panel's ``as_of`` (a bucketed indicator whose
    data lag: it stops at their watermark) says how far its data reach.
    """
    unit = reading.unit(language)
    change, tone = change_text(reading.change_pct, reading.baseline_kind, language)
    flags: list[Any] = []
    if reading.simulated:
        flags.append(html.Span(t("health.simulated", language), className="ops-chip ops-warn"))
    if reading.stale:
        flags.append(html.Span(t("map.stale", language), className="ops-chip ops-bad"))
    foot: list[Any] = [html.Span(change, className=tone)]
    if as_of is not None and reading.time != as_of:
        foot.append(html.Span(t("signs.data_to", language,
                                time=format_time(reading.time, zone or ZoneInfo("UTC"))),
                              className="ops-sign-watermark"))
    predicted = reading.forecast
    if predicted is not None and predicted.times and _finite(predicted.mean[-1]):
        hours = (predicted.times[-1] - reading.time).total_seconds() / 3600.0
        foot.append(html.Span(t("signs.forecast", language, span=format_span(hours, language),
                                mean=format_value(predicted.mean[-1], reading.decimals),
                                lower=format_value(predicted.lower[-1], reading.decimals),
                                upper=format_value(predicted.upper[-1], reading.decimals))))
        foot.append(skill_span(predicted, hours, reading.decimals, language))
    spark = sparkline_svg(reading.series_times, reading.series_values, forecast=predicted,
                          thresholds=reading.thresholds, status=reading.status, theme=theme)
    return html.Div(
        className=f"ops-sign ops-sign-{reading.status}", id=f"sign-{reading.name}",
        **data_attrs({"data-status": reading.status, "data-value": "" if not _finite(reading.value)
           else str(round(reading.value, 6))}),
        children=[
            html.Div([html.Span(reading.title(language)), *flags], className="ops-sign-title"),
            html.Div([format_value(reading.value, reading.decimals),
                      html.Span(unit, className="ops-sign-unit") if unit else None],
                     className="ops-sign-value",
                     title=t(f"signs.status.{reading.status}", language)),
            html.Img(src=svg_data_uri(spark), className="ops-sign-spark", alt=""),
            html.Div(foot, className="ops-sign-foot"),
            html.Div(t("signs.failed", language, error=reading.error),
                     className="ops-sign-foot ops-bad") if reading.error else None,
        ])


def signs_panel(readings: Sequence[IndicatorReading], language: str, theme: str,
                zone: ZoneInfo) -> list[Any]:
    if not readings:
        return [html.P(t("signs.none", language), className="cb-hint")]
    latest = max(r.time for r in readings)
    moment = format_time(latest, zone)
    return [html.P(t("signs.as_of", language, time=moment), className="cb-muted ops-as-of"),
            html.Div([sign_card(r, language, theme, zone, latest) for r in readings],
                     className="ops-signs-grid")]


def signs_fingerprint(readings: Sequence[IndicatorReading]) -> str:
    """Changes when any vital sign's time, value, status or forecast (or its skill) changes."""
    digest = hashlib.blake2b(digest_size=8)
    for reading in readings:
        predicted = (*reading.forecast.mean[-1:], *reading.forecast.skill[-1:]) \
            if reading.forecast is not None else ()
        digest.update(repr((reading.name, reading.time.isoformat(), reading.value,
                            reading.status, reading.baseline, tuple(predicted),
                            reading.stale, reading.error)).encode())
    return digest.hexdigest()


# ---------------------------------------------------------------------- layout
def signs_tab(language: str) -> dcc.Tab:
    return tab("tab.signs", "signs", language,
               [html.Div(id=ids.SIGNS_PANEL, className="ops-signs")])


# -------------------------------------------------------------------- callbacks
def register(app: Dash, services: Services) -> None:
    zone = ZoneInfo(services.config.city.timezone)

    @app.callback(
        Output(ids.SIGNS_PANEL, "children"),
        Input(ids.OPS_FINGERPRINT, "data"),
        Input(ids.PANEL_TABS, "value"),
        Input(ids.LANGUAGE, "data"),
        Input(ids.THEME, "data"),
    )
    def show_signs(_fingerprint: Any, tab: str, language: str, theme: str) -> Any:
        """Each vital sign: value, status, sparkline with forecast band, change vs baseline."""
        if tab != "signs":
            return no_update
        if services.signs is None:
            return html.P(t("signs.none", language), className="cb-hint")
        readings, _ = services.signs.current()
        return signs_panel(readings, language, theme, zone)
