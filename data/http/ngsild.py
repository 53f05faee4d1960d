"""NGSI-LD context brokers (FIWARE Orion-LD, Scorpio, Stellio …): entities as rows."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from config.city import ConfigError
from data.base import AdapterContext, Batch, SourceError
from data.http.adapter import HttpAdapter, flatten, instant
from data.http.client import (
    HTTP_OPTIONS,
    HttpClient,
    HttpSettings,
    http_settings,
    text_option,
    whole_number,
)

if TYPE_CHECKING:
    from config.city import Source

#: NGSI-LD attribute types in the normalized representation (ETSI GS CIM 009, clause 4.5).
NGSI_LD_ATTRIBUTE_TYPES = frozenset({
    "Property", "GeoProperty", "Relationship", "LanguageProperty", "VocabProperty",
    "JsonProperty", "ListProperty", "ListRelationship",
})
#: Entity members that are not attributes to flatten.
_NGSI_LD_SKIP = frozenset({"id", "type", "@context", "scope"})
#: Entity properties that may carry the observation time, in order of preference,
#: when no attribute has ``observedAt`` (Smart Data Models' ``dateObserved`` first).
_NGSI_LD_TIME_PROPERTIES = ("dateObserved", "dateModified", "modifiedAt")


@dataclass(frozen=True)
class NgsiLdSettings(HttpSettings):
    entity_type: str | None = None
    page_size: int = 100
    max_pages: int = 100
    tenant: str | None = None
    context: str | None = None
    key_values: bool = False


def parse_ngsild_options(where: str, options: Mapping[str, Any],
                         fields: Mapping[str, str] | None = None) -> NgsiLdSettings:
    """Check an ngsi-ld source's options; every mistake is a :class:`ConfigError`."""
    base = http_settings(where, options)
    context = text_option(f"{where}.context", options.get("context"))
    if context is not None and urlsplit(context).scheme not in ("http", "https"):
        raise ConfigError(f"{where}.context: expected the URL of a JSON-LD @context, "
                          f"got {context!r}")
    key_values = options.get("key_values", False)
    if not isinstance(key_values, bool):
        raise ConfigError(f"{where}.key_values: expected true or false, got {key_values!r}")
    return NgsiLdSettings(
        endpoint=base.endpoint, timeout=base.timeout, token_env=base.token_env,
        max_body=base.max_body,
        entity_type=text_option(f"{where}.entity_type", options.get("entity_type")),
        # Brokers cap a page (Orion-LD: 1000) and answer 400 beyond it.
        page_size=whole_number(f"{where}.page_size", options.get("page_size", 100), 1, 1000),
        max_pages=whole_number(f"{where}.max_pages", options.get("max_pages", 100)),
        tenant=text_option(f"{where}.tenant", options.get("tenant")),
        context=context,
        key_values=key_values,
    )


class NgsiLdAdapter(HttpAdapter):
    """Entities of an NGSI-LD context broker (FIWARE Orion-LD, Scorpio, Stellio …).

    Pages through ``GET /ngsi-ld/v1/entities?type=…&limit=…&offset=…`` until a short
    page (or the ``NGSILD-Results-Count`` total, asked for with ``count=true``), at
    most ``max_pages`` pages. Both representations are read: *normalized*
    (``{"type": "Property", "value": …, "observedAt": …}``) and *simplified*
    (``options=keyValues``, set ``key_values = true``). Each entity becomes a row:
    ``id``, ``type``, ``lat``/``lon`` from the ``location`` GeoProperty (GeoJSON:
    [longitude, latitude]), ``time`` the latest ``observedAt`` of its attributes,
    else its ``dateObserved``/``dateModified``; every other attribute as
    ``<name>`` (its value, or a Relationship's object), with ``<name>.observedAt``
    and ``<name>.unitCode`` when given.

    The broker holds current state, so ``updates()`` reads it all again.
    """

    name = "ngsi-ld"
    options = HTTP_OPTIONS | {"entity_type", "page_size", "max_pages", "tenant", "context",
                              "key_values"}
    required_options: ClassVar[frozenset[str]] = frozenset({"endpoint"})
    default_fields: ClassVar[Mapping[str, str]] = {
        "id": "id", "label": "name", "time": "time", "lat": "lat", "lon": "lon",
        "category": "type",
    }

    @classmethod
    def check_options(cls, where: str, options: Mapping[str, Any],
                      fields: Mapping[str, str]) -> None:
        """Validate the options when the config loads, not at the first read."""
        parse_ngsild_options(where, options, fields)

    def __init__(self, source: Source, context: AdapterContext) -> None:
        self.settings = parse_ngsild_options(f"[[sources]] {source.name!r}", source.options)
        super().__init__(source, context)
        endpoint = self.settings.endpoint
        self.url = (f"{endpoint}/entities" if endpoint.endswith("/ngsi-ld/v1")
                    else f"{endpoint}/ngsi-ld/v1/entities")

    def _client(self) -> HttpClient:
        headers = {"Accept": "application/ld+json, application/json;q=0.9"}
        if self.settings.tenant:
            headers["NGSILD-Tenant"] = self.settings.tenant
        if self.settings.context:
            # Terms in the answer are compacted with this @context (clause 6.3.5).
            headers["Link"] = (f'<{self.settings.context}>; rel="http://www.w3.org/ns/json-ld#context"; '
                               'type="application/ld+json"')
        return HttpClient(self.settings, headers=headers)

    def snapshot(self) -> Batch:
        """Every entity of ``entity_type`` the broker holds (up to ``max_pages`` pages)."""
        read_at = datetime.now(UTC)
        rejected: Counter[str] = Counter()
        warnings: list[str] = []
        rows: list[dict[str, Any]] = []
        limit = self.settings.page_size
        total: int | None = None
        offset = 0
        for page in range(self.settings.max_pages + 1):
            if page == self.settings.max_pages:
                warnings.append(f"stopped after {page} pages (max_pages); the broker has more "
                                "entities")
                break
            params: dict[str, Any] = {"limit": limit, "offset": offset}
            if self.settings.entity_type:
                params["type"] = self.settings.entity_type
            if self.settings.key_values:
                params["options"] = "keyValues"
            if page == 0:
                params["count"] = "true"
            body, headers = self.client.get(self.url, params)
            if not isinstance(body, list):
                raise SourceError(f"GET {self.client.display(self.url, params)}: expected a "
                                  f"JSON array of entities, got {type(body).__name__}")
            if page == 0:
                total = _count_header(headers.get("NGSILD-Results-Count"))
            for entity in body:
                if not isinstance(entity, Mapping):
                    rejected["not a JSON object"] += 1
                    continue
                row = self._entity_row(entity, rejected)
                if row is not None:
                    rows.append(row)
            offset += len(body)
            if len(body) < limit or (total is not None and offset >= total):
                break
        batch = self._batch(rows, rejected, warnings)
        batch.cursor = read_at.isoformat()
        return batch

    def updates(self, since: Any) -> Batch:
        """The broker holds current state: read it again."""
        return self.snapshot()

    def _entity_row(self, entity: Mapping[str, Any], rejected: Counter[str]) -> dict[str, Any] | None:
        kind = entity.get("type")
        if isinstance(kind, list):  # several types (NGSI-LD 1.5+): the first names it
            kind = kind[0] if kind else None
        row: dict[str, Any] = {"id": entity.get("id"), "type": kind}
        observed: list[tuple[datetime, str]] = []
        location: Any = None
        for name, member in entity.items():
            if name in _NGSI_LD_SKIP:
                continue
            attribute = _ngsi_ld_instance(member)
            value = _ngsi_ld_value(attribute)
            if name == "location":
                location = value
                continue
            if isinstance(value, Mapping):  # a structured value, e.g. an address
                row.update(flatten(value, f"{name}."))
            else:
                row[name] = value
            if _is_ngsi_ld_attribute(attribute):
                for meta in ("observedAt", "unitCode"):
                    if meta in attribute:
                        row[f"{name}.{meta}"] = attribute[meta]
                moment = instant(attribute.get("observedAt"))
                if moment is not None:
                    observed.append((moment, str(attribute["observedAt"])))
        if observed:
            row["time"] = max(observed)[1]
        else:
            row["time"] = next((row[p] for p in _NGSI_LD_TIME_PROPERTIES if row.get(p)), None)
        return row if self._place(row, location, rejected) else None


def _ngsi_ld_instance(member: Any) -> Any:
    """A multi-attribute (several instances, each with a ``datasetId``) as its default
    instance — the one without a datasetId — else its first."""
    if isinstance(member, list) and member and all(_is_ngsi_ld_attribute(m) for m in member):
        return next((m for m in member if "datasetId" not in m), member[0])
    return member


def _is_ngsi_ld_attribute(member: Any) -> bool:
    return isinstance(member, Mapping) and member.get("type") in NGSI_LD_ATTRIBUTE_TYPES


def _ngsi_ld_value(member: Any) -> Any:
    """An attribute's value in either representation.

    Normalized: a Property's ``value``, a Relationship's ``object``, a
    LanguageProperty's English (else first) string. Simplified: the member itself.
    JSON-LD typed values (``{"@type": "DateTime", "@value": "…"}``) are unwrapped.
    """
    value = member
    if _is_ngsi_ld_attribute(member):
        if "value" in member:
            value = member["value"]
        elif "object" in member:
            value = member["object"]
        elif isinstance(member.get("languageMap"), Mapping) and member["languageMap"]:
            texts = member["languageMap"]
            value = texts.get("en", next(iter(texts.values())))
        else:
            value = None
    if isinstance(value, Mapping) and "@value" in value:
        value = value["@value"]
    return value


def _count_header(value: str | None) -> int | None:
    try:
        return None if value is None else max(0, int(value))
    except ValueError:
        return None


__all__ = ["NGSI_LD_ATTRIBUTE_TYPES", "NgsiLdAdapter", "NgsiLdSettings", "parse_ngsild_options"]
