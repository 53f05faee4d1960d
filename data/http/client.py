"""The HTTP client every HTTP adapter shares: options, time-outs, auth, errors.

:class:`HttpClient` GETs JSON from one API and turns every failure — connection
refused, time-out, HTTP status >= 400, a body that is not JSON, a body over the
size cap — into a :class:`~data.base.SourceError` naming the URL (never a
secret) and the status.

``timeout`` is a deadline on the whole call, connect and body together: the body
is streamed and the remaining time is checked (and given to the socket) before
every read, so a server trickling a byte every few seconds cannot hold a read
past it, as a per-read socket time-out alone would let it. ``max_body_mb`` caps
the body: an answer that declares a larger ``Content-Length`` is refused unread,
one that grows past it is refused at that point, never read whole.

Paging is each protocol's own (date windows, next links, offsets), so it lives
in the protocol modules; retrying is not an adapter's job
(the app reads the source again on its next refresh).

Secrets never come from the config file: ``token_env`` names the environment
variable holding a bearer token (or, with ``api_key_param``, an API key sent as
that query parameter). The token goes only to the endpoint's own host, never to
another host a paging link points at.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from config.kit import ConfigError, env_name, positive_duration, text
from data.base import SourceError

if TYPE_CHECKING:
    import requests

DEFAULT_TIMEOUT = 10.0
#: The default cap on one answer's body, in MB (10^6 bytes); ``max_body_mb`` per source.
DEFAULT_MAX_BODY_MB = 50.0
#: Options every HTTP adapter takes (each adds its own to these).
HTTP_OPTIONS = frozenset({"endpoint", "timeout", "token_env", "max_body_mb"})
_CHUNK = 64 * 1024


# ------------------------------------------------------------------ option checks
def _endpoint(where: str, value: Any) -> str:
    """An http(s) base URL without credentials, query or fragment; no trailing slash."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}.endpoint: expected an http(s) URL, got {value!r}")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}.endpoint: expected an http(s) URL, got {value!r}")
    if parts.username or parts.password:
        raise ConfigError(f"{where}.endpoint: credentials do not belong in the config file; "
                          "name the environment variable holding a token with token_env")
    if parts.query or parts.fragment:
        raise ConfigError(f"{where}.endpoint: expected a base URL without '?…' or '#…', "
                          f"got {value!r}")
    return value.strip().rstrip("/")


def _positive(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{where}: expected a positive number of seconds, got {value!r}")
    return float(value)


def whole_number(where: str, value: Any, lo: int = 1, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo \
            or (hi is not None and value > hi):
        bounds = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ConfigError(f"{where}: expected a whole number {bounds}, got {value!r}")
    return value


def text_option(where: str, value: Any) -> str | None:
    return text(where, value, optional=True)


def positive_span(where: str, value: Any) -> timedelta:
    return timedelta(seconds=positive_duration(where, value))


@dataclass(frozen=True)
class HttpSettings:
    """Options every HTTP adapter has."""

    endpoint: str
    #: Seconds for one whole call: connect, headers and body.
    timeout: float
    token_env: str | None
    #: The most bytes one answer's body may have.
    max_body: int = int(DEFAULT_MAX_BODY_MB * 1e6)


def http_settings(where: str, options: Mapping[str, Any]) -> HttpSettings:
    if "endpoint" not in options:
        raise ConfigError(f"{where}: missing required key 'endpoint'")
    return HttpSettings(
        endpoint=_endpoint(where, options["endpoint"]),
        timeout=_positive(f"{where}.timeout", options.get("timeout", DEFAULT_TIMEOUT)),
        token_env=env_name(f"{where}.token_env", options.get("token_env"), optional=True),
        max_body=int(_positive_mb(f"{where}.max_body_mb",
                                  options.get("max_body_mb", DEFAULT_MAX_BODY_MB)) * 1e6),
    )


def _positive_mb(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1e5:
        raise ConfigError(f"{where}: expected a size in MB in (0, 100000], got {value!r} "
                          "(e.g. max_body_mb = 50)")
    return float(value)


# ---------------------------------------------------------------------- the client
def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


class HttpClient:
    """GETs JSON from one API: time-outs, auth from the environment, errors as SourceError.

    ``api_key_param`` sends the token as that query parameter instead of an
    ``Authorization: Bearer`` header. Messages show URLs without the key and with
    any echo of the token masked.
    """

    def __init__(self, settings: HttpSettings, api_key_param: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.api_key_param = api_key_param
        self.headers = dict(headers or {})
        self._session: requests.Session | None = None
        self._secret: str | None = None

    def _requests(self) -> Any:
        import requests

        if self._session is None:
            self._session = requests.Session()
            self._session.headers["User-Agent"] = "citybrain"
        return requests

    def _token(self) -> str | None:
        # Read on every call: a rotated token is picked up without a restart.
        name = self.settings.token_env
        if name is None:
            return None
        token = os.environ.get(name, "").strip()
        if not token:
            raise SourceError(f"environment variable {name} (token_env) is not set or empty")
        self._secret = token
        return token

    def redact(self, text: str) -> str:
        """``text`` with the token masked, for messages and logs."""
        return text.replace(self._secret, "***") if self._secret else text

    def display(self, url: str, params: Mapping[str, Any] | None = None) -> str:
        """The URL as messages show it: query decoded for reading, the API key left out."""
        parts = urlsplit(url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                 if k != self.api_key_param]
        query += [(k, str(v)) for k, v in (params or {}).items() if k != self.api_key_param]
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
        shown = urlunsplit((parts.scheme, netloc, parts.path, unquote(urlencode(query)), ""))
        return self.redact(shown)

    def get(self, url: str, params: Mapping[str, Any] | None = None,
            headers: Mapping[str, str] | None = None) -> tuple[Any, Mapping[str, str]]:
        """GET ``url`` and decode its JSON body; returns (body, response headers)."""
        http = self._requests()
        assert self._session is not None
        token = self._token()
        query = dict(params or {})
        send_headers = {**self.headers, **(headers or {})}
        if token is not None and _origin(url) == _origin(self.settings.endpoint):
            if self.api_key_param:
                query[self.api_key_param] = token
            else:
                send_headers["Authorization"] = f"Bearer {token}"
        shown = self.display(url, params)
        started = time.monotonic()
        timeout = self.settings.timeout
        try:
            # stream=True: headers only; the body is read below against the deadline.
            response = self._session.get(url, params=query or None, headers=send_headers,
                                         timeout=(timeout, timeout), stream=True)
        except http.Timeout as exc:
            raise SourceError(f"GET {shown}: no answer within {timeout:g} s "
                              "(timeout)") from exc
        except http.ConnectionError as exc:
            raise SourceError(f"GET {shown}: cannot connect: {self._reason(exc)}") from exc
        except http.RequestException as exc:
            raise SourceError(f"GET {shown}: {type(exc).__name__}: "
                              f"{self.redact(str(exc))}") from exc
        try:
            failed = response.status_code >= 400
            # An error page is read only so far as its first words are shown.
            raw = self._read_body(response, shown, started,
                                  min(self.settings.max_body, 64_000) if failed else None)
        finally:
            response.close()
        if failed:
            detail = self._detail(raw)
            raise SourceError(f"GET {shown}: HTTP {response.status_code} {response.reason or ''}"
                              .rstrip() + (f": {detail}" if detail else ""))
        try:
            body = json.loads(raw)
        except ValueError as exc:
            kind = response.headers.get("Content-Type", "no content type")
            snippet = " ".join(raw[:80].decode("utf-8", "replace").split())
            raise SourceError(f"GET {shown}: the answer is not JSON ({kind}): "
                              f"{self.redact(snippet)!r}") from exc
        return body, response.headers

    def _read_body(self, response: Any, shown: str, started: float,
                   truncate_at: int | None = None) -> bytes:
        """The body, read in chunks against the call's deadline and the size cap.

        ``truncate_at``: stop quietly after that many bytes (an error page's start)
        instead of refusing a body over the cap.
        """
        from urllib3.exceptions import HTTPError as Urllib3Error

        cap = self.settings.max_body
        deadline = started + self.settings.timeout
        declared = response.headers.get("Content-Length", "")
        if truncate_at is None and declared.strip().isdigit() and int(declared) > cap:
            raise SourceError(f"GET {shown}: the answer is {_mb(int(declared))} "
                              f"(Content-Length), over max_body_mb = {_mb(cap, unit=False)}: "
                              "refused unread")
        raw = response.raw
        chunks: list[bytes] = []
        size = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SourceError(f"GET {shown}: the answer took longer than "
                                  f"{self.settings.timeout:g} s (timeout on the whole call; "
                                  f"{size} bytes arrived)")
            sock = getattr(getattr(raw, "connection", None), "sock", None)
            if sock is not None:
                sock.settimeout(remaining)  # no single read may outlast the deadline
            try:
                chunk = raw.read1(_CHUNK, decode_content=True)
            except (Urllib3Error, OSError) as exc:
                if time.monotonic() >= deadline:
                    continue  # said as the deadline above
                raise SourceError(f"GET {shown}: the answer broke off after {size} bytes: "
                                  f"{type(exc).__name__}: {self.redact(str(exc))}") from exc
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if truncate_at is not None and size >= truncate_at:
                chunks.append(chunk)
                return b"".join(chunks)[:truncate_at]
            if size > cap:
                raise SourceError(f"GET {shown}: the answer is over max_body_mb = "
                                  f"{_mb(cap, unit=False)} ({size} bytes read, refused)")
            chunks.append(chunk)

    def _reason(self, exc: Exception) -> str:
        # urllib3 wraps the socket error twice; its innermost text is the useful part
        # ("[Errno 111] Connection refused"), the rest repeats the URL.
        inner = getattr(exc.args[0], "reason", exc) if exc.args else exc
        text = str(inner)
        if "): " in text:
            text = text.split("): ", 1)[1]
        return self.redact(text)

    def _detail(self, raw: bytes) -> str:
        """The API's own words on an error: Open311 ``description``, NGSI-LD ProblemDetails
        ``title``/``detail``, FROST ``message`` — else the start of the body."""
        try:
            body = json.loads(raw)
        except ValueError:
            return self.redact(" ".join(raw[:200].decode("utf-8", "replace").split()))
        if isinstance(body, list) and body and isinstance(body[0], Mapping):
            body = body[0]
        if isinstance(body, Mapping):
            words = [str(body[k]) for k in ("title", "detail", "description", "message")
                     if body.get(k)]
            if words:
                return self.redact(": ".join(words))[:300]
        return self.redact(" ".join(str(body)[:200].split()))

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def _mb(size: int, unit: bool = True) -> str:
    return f"{size / 1e6:g} MB" if unit else f"{size / 1e6:g}"


__all__ = [
    "DEFAULT_MAX_BODY_MB", "DEFAULT_TIMEOUT", "HTTP_OPTIONS", "HttpClient", "HttpSettings",
    "http_settings", "positive_span", "text_option", "whole_number",
]
