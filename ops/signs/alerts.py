"""Early warning (预测预警): rules from config evaluated into de-duplicated alerts.

Each :class:`~ops.signs.rules.Rule` is checked against the city at a moment and
yields *findings* — one per key (an indicator, an H3 cell, a device id) whose
condition holds. An :class:`AlertBook` turns findings into alerts:

* a new (rule, key) raises an **alert** (id, severity, cells, first/last seen,
  value, message in zh and en);
* the same (rule, key) found again **updates** that alert (``last_seen``,
  ``count``, value, and severity if it changed) instead of raising another;
* an active alert whose condition no longer holds **clears** itself
  (``state = "cleared"``, ``cleared_at``); if the condition returns later, that is
  a new alert;
* an operator may **acknowledge** an alert (who, when); acknowledging does not
  silence the condition.

A rule that cannot be evaluated now (its indicator has no value, not enough
history yet) is reported in :attr:`AlertChanges.errors` and its alerts are left as
they were — not knowing is not the same as the condition having ended.

Without a ledger, alerts live in the process's memory: a restart starts a new
book. With one (:mod:`ops.signs.ledger`: Redis or the event store's database),
the book is one document per deployment: every answer reads it, every change
(evaluate, acknowledge) is one atomic read-modify-write, so several workers see
the same alerts and acknowledgements and a restart keeps them.

Each rule kind (threshold, forecast, cell_count, reading, silent, anomaly, …) is
a class in :mod:`ops.signs.rules` that knows its own check and messages; the book
only keeps what they find.
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from config.i18n import pick
from geo.hexes import to_hex
from ops.signs.indicator_spec import Indicator
from ops.signs.indicators import IndicatorHistory, IndicatorReading, evaluate, failed_reading
from ops.signs.kit import Severity
from ops.signs.ledger import AlertLedger
from ops.signs.rows import reference_time
from ops.signs.rules import Rule
from ops.signs.rules.base import CheckContext, Finding, RuleUnavailable

if TYPE_CHECKING:
    from store.city import CityData

log = logging.getLogger(__name__)

AlertState = Literal["active", "cleared"]
_SEVERITY_RANK = {"info": 0, "warn": 1, "alarm": 2}
_TIME_FIELDS = ("first_seen", "last_seen", "cleared_at", "acked_at")


@dataclass
class Alert:
    """One alert: a rule's condition holding for one key, from first to last seen."""

    id: str
    rule: str
    kind: str
    key: str
    severity: Severity
    title_zh: str
    title_en: str
    message_zh: str
    message_en: str
    value: float
    limit: float | None
    cells: tuple[int, ...]
    first_seen: pd.Timestamp
    last_seen: pd.Timestamp
    indicator: str | None = None
    count: int = 1
    state: AlertState = "active"
    cleared_at: pd.Timestamp | None = None
    acked_by: str | None = None
    acked_at: pd.Timestamp | None = None
    #: The book's running number of this alert (its id ends with it): with
    #: ``first_seen`` the order lists page in, which never changes for an alert.
    seq: int = 0

    @property
    def order_key(self) -> tuple[int, int]:
        """``(first_seen in ns, seq)``: newest first is descending order of this key."""
        return int(self.first_seen.value), self.seq

    @property
    def acknowledged(self) -> bool:
        return self.acked_by is not None

    def message(self, language: str) -> str:
        return pick(language, self.message_zh, self.message_en)

    def to_record(self) -> dict[str, Any]:
        """Every field, JSON-ready, for a ledger (:meth:`from_record` reads it back)."""
        record = {name: getattr(self, name) for name in self.__dataclass_fields__}
        for name in _TIME_FIELDS:
            record[name] = None if record[name] is None else record[name].isoformat()
        record["cells"] = list(self.cells)
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Alert:
        values = {k: v for k, v in record.items() if k in cls.__dataclass_fields__}
        for name in _TIME_FIELDS:
            values[name] = None if values.get(name) is None else pd.Timestamp(values[name])
        values["cells"] = tuple(int(c) for c in values.get("cells", ()))
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "rule": self.rule, "kind": self.kind, "key": self.key,
            "severity": self.severity, "state": self.state,
            "title_zh": self.title_zh, "title_en": self.title_en,
            "message_zh": self.message_zh, "message_en": self.message_en,
            "value": None if not math.isfinite(self.value) else round(float(self.value), 6),
            "limit": None if self.limit is None or not math.isfinite(self.limit)
            else round(float(self.limit), 6),
            "cells": [to_hex(c) for c in self.cells], "indicator": self.indicator,
            "first_seen": self.first_seen.isoformat(), "last_seen": self.last_seen.isoformat(),
            "count": self.count,
            "cleared_at": None if self.cleared_at is None else self.cleared_at.isoformat(),
            "acknowledged": self.acknowledged, "acked_by": self.acked_by,
            "acked_at": None if self.acked_at is None else self.acked_at.isoformat(),
        }


@dataclass
class AlertChanges:
    """What one :meth:`AlertBook.evaluate` changed."""

    time: pd.Timestamp
    raised: list[Alert] = field(default_factory=list)
    updated: list[Alert] = field(default_factory=list)
    #: Updated alerts whose severity changed (also in ``updated``).
    escalated: list[Alert] = field(default_factory=list)
    cleared: list[Alert] = field(default_factory=list)
    #: Findings not raised because a rule reached ``max_alerts``, by rule.
    suppressed: dict[str, int] = field(default_factory=dict)
    #: Rows a rule could not judge (e.g. no time), by rule.
    skipped: dict[str, int] = field(default_factory=dict)
    #: Rules that could not be evaluated, and why (their alerts were left as they were).
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        """True when an alert appeared, cleared or changed severity."""
        return bool(self.raised or self.cleared or self.escalated)

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat(),
            "raised": [a.id for a in self.raised], "updated": [a.id for a in self.updated],
            "escalated": [a.id for a in self.escalated], "cleared": [a.id for a in self.cleared],
            "suppressed": dict(self.suppressed), "skipped": dict(self.skipped),
            "errors": dict(self.errors),
        }


# ------------------------------------------------------------------ checks
def check_rule(rule: Rule, data: CityData, now: pd.Timestamp,
               readings: Mapping[str, IndicatorReading] | None = None,
               indicators: Sequence[Indicator] = ()) -> list[Finding]:
    """The findings of one rule at ``now`` (pure); raises :class:`RuleUnavailable`."""
    ctx = CheckContext(data, pd.Timestamp(now), readings or {}, {i.name: i for i in indicators},
                       data.config.city.timezone)
    return rule.check(ctx)


# -------------------------------------------------------------------- book
class AlertBook:
    """Active and recently cleared alerts of a city, in memory or a shared ledger (module docs).

    Example::

        book = AlertBook(settings.rules, settings.indicators)
        changes = book.evaluate(data, now)        # each tick
        book.active()                             # newest first
        book.ack(alert_id, "duty-officer", now)
    """

    def __init__(self, rules: Sequence[Rule], indicators: Sequence[Indicator] = (),
                 history: IndicatorHistory | None = None, max_cleared: int = 500,
                 ledger: AlertLedger | None = None) -> None:
        self.rules = tuple(rules)
        self.indicators = {i.name: i for i in indicators}
        missing = sorted({r.indicator for r in self.rules if r.indicator}
                         - set(self.indicators))
        if missing:
            raise ValueError(f"rules refer to undeclared indicator(s): {', '.join(missing)}")
        self.history = history
        self._active: dict[tuple[str, str], Alert] = {}
        self._cleared: deque[Alert] = deque(maxlen=max_cleared)
        self._by_id: dict[str, Alert] = {}
        self._prefix = uuid.uuid4().hex[:6]
        self._last_seq = 0  # the running number of the newest alert
        self._lock = threading.RLock()
        self.ledger = ledger

    # ---------------------------------------------------------------- ledger
    def document(self) -> dict[str, Any]:
        """The book as one JSON-ready document (what a ledger stores)."""
        with self._lock:
            return {"prefix": self._prefix, "seq": self._last_seq,
                    "active": [a.to_record() for a in self._active.values()],
                    "cleared": [a.to_record() for a in self._cleared]}

    def _load(self, document: Mapping[str, Any] | None) -> None:
        """Replace the book's alerts by a ledger's document (None: keep this book's own)."""
        if document is None:
            return
        self._prefix = str(document.get("prefix") or self._prefix)
        self._last_seq = int(document.get("seq", 0))
        active = [Alert.from_record(r) for r in document.get("active", ())]
        self._active = {(a.rule, a.key): a for a in active}
        self._cleared.clear()
        self._cleared.extend(Alert.from_record(r) for r in document.get("cleared", ()))
        self._by_id = {a.id: a for a in [*self._active.values(), *self._cleared]}

    def _sync(self) -> None:
        """Read the ledger's alerts (callers hold the lock)."""
        if self.ledger is not None:
            self._load(self.ledger.read())

    def _change(self, apply: Callable[[], Any]) -> Any:
        """Run ``apply`` on the current alerts and keep what it did: in the ledger when shared.

        With a ledger, ``apply`` may run more than once (when another worker wrote
        first), each time on that worker's alerts: it must start from scratch.
        """
        with self._lock:
            if self.ledger is None:
                return apply()
            result: list[Any] = []

            def change(stored: dict[str, Any] | None) -> dict[str, Any]:
                self._load(stored)
                result[:] = [apply()]
                return self.document()

            self.ledger.update(change)
            return result[0]

    # ------------------------------------------------------------- evaluate
    def _readings(self, data: CityData, now: pd.Timestamp,
                  given: Mapping[str, IndicatorReading] | None) -> dict[str, IndicatorReading]:
        readings = dict(given or {})
        wanted = {r.indicator for r in self.rules if r.enabled and r.indicator}
        forecasts = {r.indicator for r in self.rules if r.enabled and r.needs_forecast}
        for name in sorted(wanted - set(readings)):
            indicator = self.indicators[name]
            try:
                readings[name] = evaluate(data, indicator, now, self.history,
                                          with_forecast=name in forecasts)
            except Exception as exc:
                log.exception("indicator %s failed", name)
                readings[name] = failed_reading(indicator, now, f"{type(exc).__name__}: {exc}")
        return readings

    def evaluate(self, data: CityData, now: pd.Timestamp | None = None,
                 readings: Mapping[str, IndicatorReading] | None = None) -> AlertChanges:
        """Check every enabled rule at ``now`` and apply the findings; returns what changed.

        ``readings`` (indicator name → reading, e.g. from the same tick's
        :func:`~ops.signs.indicators.evaluate_all`) saves recomputing indicators.
        """
        now = reference_time(data) if now is None else pd.Timestamp(now)
        ctx = CheckContext(data, now, self._readings(data, now, readings), self.indicators,
                           data.config.city.timezone)
        errors: dict[str, str] = {}
        checked: list[tuple[Rule, list[Finding], tuple[str, str]]] = []
        for rule in self.rules:
            if not rule.enabled:
                continue
            try:
                findings = rule.check(ctx)
            except RuleUnavailable as exc:
                errors[rule.name] = str(exc)
                continue
            except Exception as exc:  # one broken rule must not stop the others
                log.exception("rule %s failed", rule.name)
                errors[rule.name] = f"{type(exc).__name__}: {exc}"
                continue
            source = self.indicators.get(rule.indicator or "")
            units = ("", "") if source is None else (source.unit_zh, source.unit_en)
            checked.append((rule, findings, units))

        def apply() -> AlertChanges:
            changes = AlertChanges(time=now, errors=dict(errors), skipped=dict(ctx.skipped))
            for rule, findings, units in checked:
                self._apply(rule, findings, now, changes, units)
            return changes

        changes: AlertChanges = self._change(apply)
        return changes

    def _apply(self, rule: Rule, findings: list[Finding], now: pd.Timestamp,
               changes: AlertChanges, units: tuple[str, str]) -> None:
        active_keys = {key for (name, key) in self._active if name == rule.name}
        known = [f for f in findings if f.key in active_keys]
        fresh = sorted((f for f in findings if f.key not in active_keys),
                       key=lambda f: (-_SEVERITY_RANK[f.severity], -f.strength, f.key))
        room = max(0, rule.max_alerts - len(known))
        if len(fresh) > room:
            changes.suppressed[rule.name] = len(fresh) - room
            fresh = fresh[:room]
        seen = set()
        for finding in known + fresh:
            seen.add(finding.key)
            message_zh = rule.message(finding, "zh", units[0])
            message_en = rule.message(finding, "en", units[1])
            alert = self._active.get((rule.name, finding.key))
            if alert is None:
                self._last_seq += 1
                seq = self._last_seq
                alert = Alert(
                    id=f"{self._prefix}-{seq}", seq=seq, rule=rule.name, kind=rule.kind,
                    key=finding.key, severity=finding.severity, title_zh=rule.title_zh,
                    title_en=rule.title_en, message_zh=message_zh, message_en=message_en,
                    value=finding.value, limit=finding.limit, cells=finding.cells,
                    first_seen=now, last_seen=now, indicator=rule.indicator)
                self._active[(rule.name, finding.key)] = alert
                self._by_id[alert.id] = alert
                changes.raised.append(alert)
                continue
            if alert.severity != finding.severity:
                changes.escalated.append(alert)
            alert.severity = finding.severity
            alert.value, alert.limit, alert.cells = finding.value, finding.limit, finding.cells
            alert.message_zh, alert.message_en = message_zh, message_en
            alert.last_seen = now
            alert.count += 1
            changes.updated.append(alert)
        for key in sorted(active_keys - seen):
            alert = self._active.pop((rule.name, key))
            alert.state = "cleared"
            alert.cleared_at = now
            if len(self._cleared) == self._cleared.maxlen:
                self._by_id.pop(self._cleared[0].id, None)
            self._cleared.append(alert)
            changes.cleared.append(alert)

    # ---------------------------------------------------------------- access
    def active(self) -> list[Alert]:
        """Active alerts, most severe then newest first."""
        with self._lock:
            self._sync()
            alerts = list(self._active.values())
        return sorted(alerts, key=lambda a: (-_SEVERITY_RANK[a.severity], -a.first_seen.value,
                                             a.id))

    def cleared(self) -> list[Alert]:
        """Recently cleared alerts (bounded), newest first."""
        with self._lock:
            self._sync()
            return list(reversed(self._cleared))

    def get(self, alert_id: str) -> Alert:
        """An active or recently cleared alert; KeyError when unknown."""
        with self._lock:
            self._sync()
            return self._by_id[alert_id]

    def ack(self, alert_id: str, who: str, now: pd.Timestamp) -> Alert:
        """Acknowledge an alert (the first acknowledgement is kept); KeyError when unknown."""
        def apply() -> Alert:
            alert = self._by_id[alert_id]
            if alert.acked_by is None:
                alert.acked_by = who
                alert.acked_at = pd.Timestamp(now)
            return alert

        if self.ledger is not None:
            self.get(alert_id)  # KeyError before writing anything
        acked: Alert = self._change(apply)
        return acked

    def listed(self, state: Literal["active", "cleared", "all"] = "active") -> list[Alert]:
        """The active (most severe, then newest first), cleared (newest first) or all alerts."""
        with self._lock:
            self._sync()
            ledger, self.ledger = self.ledger, None  # one read for both lists
            try:
                return (self.active() if state in ("active", "all") else []) + \
                    (self.cleared() if state in ("cleared", "all") else [])
            finally:
                self.ledger = ledger

    def as_dicts(self, state: Literal["active", "cleared", "all"] = "active") -> list[dict[str, Any]]:
        with self._lock:
            return [a.as_dict() for a in self.listed(state)]


__all__ = ["Alert", "AlertBook", "AlertChanges", "Finding", "RuleUnavailable", "check_rule"]
