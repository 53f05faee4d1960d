"""Dispatch rules: which department gets a category, and how long it has (its SLA).

Built once from the ``[events]`` settings; pure lookups afterwards. An SLA is an
:class:`~ops.events.calendar.Sla`: its ``due_at`` and ``elapsed`` are the only
place due times and lateness are computed.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from ops.events.calendar import Sla
    from ops.events.model import IncomingReport
    from ops.events.settings import EventsSettings

T = TypeVar("T")
_GLOB = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class CategoryRules(Generic[T]):
    """Category → value: exact categories first, then glob patterns in order, then default.

    >>> rules = CategoryRules.build({"Noise*": "NYPD", "Rodent": "DOHMH"}, "311")
    >>> rules.match("noise - vehicle"), rules.match("Rodent"), rules.match("Other")
    (('NYPD', 'Noise*'), ('DOHMH', 'Rodent'), ('311', 'default'))
    """

    exact: Mapping[str, T]
    patterns: tuple[tuple[str, re.Pattern[str], T], ...]
    default: T

    @classmethod
    def build(cls, table: Mapping[str, T], default: T) -> CategoryRules[T]:
        exact = {k: v for k, v in table.items() if not _GLOB.search(k)}
        patterns = tuple((k, re.compile(fnmatch.translate(k), re.IGNORECASE), v)
                         for k, v in table.items() if _GLOB.search(k))
        return cls(exact=exact, patterns=patterns, default=default)

    def match(self, category: str) -> tuple[T, str]:
        """The value for ``category`` and the rule that gave it (``"default"`` if none)."""
        if category in self.exact:
            return self.exact[category], category
        for key, pattern, value in self.patterns:
            if pattern.match(category):
                return value, key
        return self.default, "default"


@dataclass(frozen=True)
class Policy:
    """Merging, routing and SLA rules, built once from :class:`EventsSettings`."""

    departments: CategoryRules[str]
    sla: CategoryRules[Sla]
    agencies: Mapping[str, str] = field(default_factory=dict)
    use_source_agency: bool = True
    merge_window: float = 7200.0
    merge_res: int = 9
    max_escalation: int = 3

    @classmethod
    def from_settings(cls, settings: EventsSettings) -> Policy:
        return cls(
            departments=CategoryRules.build(settings.departments, settings.default_department),
            sla=CategoryRules.build(settings.sla, settings.default_sla),
            agencies=settings.agencies,
            use_source_agency=settings.use_source_agency,
            merge_window=settings.merge_window,
            merge_res=settings.merge_res,
            max_escalation=settings.max_escalation,
        )

    def route(self, category: str) -> tuple[str, str]:
        """(department, why) by the category rules."""
        department, rule = self.departments.match(category)
        why = "default department" if rule == "default" else f"rule {rule!r}"
        return department, why

    def department_for(self, report: IncomingReport) -> tuple[str, str]:
        """(department, why) for a new event: the source's agency if it names one, else rules."""
        if self.use_source_agency and report.agency:
            return self.agencies.get(report.agency, report.agency), \
                f"source agency {report.agency!r}"
        return self.route(report.category)

    def sla_for(self, category: str) -> Sla:
        """The category's SLA (calendar or business time)."""
        return self.sla.match(category)[0]



__all__ = ["CategoryRules", "Policy"]
