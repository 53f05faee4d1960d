"""Small pieces every feature module shares: translated labels, tabs, ``data-*`` hooks,
times and spans for people, and the outcome of an operator action.

Nothing here reads the city or a service; the feature modules (``callbacks.events``,
``callbacks.signs``, ``callbacks.alerts``, …) build their components from these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from dash import ctx, dcc, html

from callbacks import ids
from config.i18n import t

TIME_FORMAT = "%Y-%m-%d %H:%M"


def label(key: str, language: str, tag: Any = html.Span, **kwargs: Any) -> Any:
    """A fixed text that the app's translate callback switches with the language.

    Its id is the pattern ``{"type": ids.LABELS, "key": key}`` that
    :mod:`callbacks.controls` translates all at once.
    """
    return tag(t(key, language), id={"type": ids.LABELS, "key": key}, **kwargs)


def tab(key: str, value: str, language: str, children: list[Any]) -> dcc.Tab:
    """One tab of the right panel, its title a translated label."""
    return dcc.Tab(label=label(key, language), value=value, className="cb-tab",
                   selected_className="cb-tab-selected", children=children)


def data_attrs(values: Mapping[str, Any]) -> dict[str, Any]:
    """``data-*`` attributes for a component (stable hooks for tests and wall scripts)."""
    return dict(values)


def format_time(moment: datetime | None, zone: ZoneInfo) -> str:
    """A moment in the city's time zone, to the minute; ``—`` when unknown."""
    return "—" if moment is None else moment.astimezone(zone).strftime(TIME_FORMAT)


def format_span(hours: float | None, language: str) -> str:
    """A duration for people: minutes under an hour, hours under two days, then days."""
    if hours is None:
        return "—"
    if hours < 1:
        return t("events.minutes", language, n=max(0, int(round(hours * 60))))
    if hours < 48:
        number = f"{hours:.1f}".removesuffix(".0") if hours < 10 else f"{hours:.0f}"
        return t("events.hours", language, n=number)
    return t("events.days", language, n=f"{hours / 24:,.0f}")


def span_parts(hours: float | None, language: str) -> tuple[str, str]:
    """:func:`format_span` as (number, unit), for tiles that show the unit small."""
    text = format_span(hours, language)
    number, _, unit = text.partition(" ")
    return number, unit


@dataclass(frozen=True)
class Outcome:
    """What an operator action did: an i18n message key and its values."""

    ok: bool
    key: str
    values: dict[str, Any] = field(default_factory=dict)

    def text(self, language: str) -> str:
        values = dict(self.values)
        for name in ("before", "after"):
            if name in values:
                values[name] = t(f"status.{values[name]}", language)
        return t(self.key, language, **values)

    def message(self, language: str) -> html.Span:
        """The outcome as a status line (``data-outcome`` carries its key)."""
        return html.Span(self.text(language), className="ops-ok" if self.ok else "ops-bad",
                         **data_attrs({"data-outcome": self.key}))


def triggered_value() -> Any:
    """The new value of the input that fired (None for a component that just appeared)."""
    return ctx.triggered[0]["value"] if ctx.triggered else None

