"""Sign-in that holds up in a public hall: rate limits, lockout, revocable sessions, cookie flags.

The city file's ``[signin]`` table (every key optional)::

    [signin]
    attempts = "20/minute"      # sign-in tries per client address (Flask-Limiter notation)
    max_failures = 5            # wrong passwords for one user name (within `lockout`) ...
    lockout = "15m"             # ... lock that name for this long (the right password too)
    session_lifetime = "12h"    # a signed-in browser is signed out after this long
    same_site = "Lax"           # the session cookie's SameSite: "Lax" or "Strict"
    secure_cookie = "auto"      # "auto": Secure when the request came over HTTPS; "always"; "never"

A :class:`SessionGuard` holds what must be shared by every worker: the per-address
counts (a :class:`flask_limiter.Limiter`, moving window), the per-user failures and
locks, and the open sessions. All of them live in the limiter's storage: in this
process (``memory://``) for one process, in Redis when the city uses Redis, so a
count or a logout on one worker holds on every other. A session is a random id
kept server-side under the user's name; the signed cookie only carries the name and
the id, so logging out (deleting the id) makes a cookie captured before it useless.

Example::

    guard = SessionGuard(SignInSettings(max_failures=3, lockout=60))
    guard.install(app.server)          # the limiter and the cookie flags on a Flask app
    guard.before_attempt("duty")       # raises SignInRefused when limited or locked
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from flask import Flask, has_request_context, request
from flask.sessions import SecureCookieSessionInterface

from config.kit import ConfigError, check_keys, choice, number, positive_duration, text
from config.sections import Section

if TYPE_CHECKING:
    from flask_limiter import Limiter

log = logging.getLogger(__name__)

SameSite = Literal["Lax", "Strict"]
SecureCookie = Literal["auto", "always", "never"]
SAME_SITE: tuple[SameSite, ...] = ("Lax", "Strict")
SECURE_COOKIE: tuple[SecureCookie, ...] = ("auto", "always", "never")
_SIGNIN_KEYS = frozenset({"attempts", "max_failures", "lockout", "session_lifetime",
                          "same_site", "secure_cookie"})


@dataclass(frozen=True)
class SignInSettings:
    """``[signin]``: how often one may try, when a name locks, how cookies are sent."""

    #: Sign-in tries per client address, in Flask-Limiter's notation ("20/minute").
    attempts: str = "20/minute"
    #: Wrong passwords for one user name, within ``lockout`` of the first, before it is locked.
    max_failures: int = 5
    #: How long a locked name stays locked, in seconds.
    lockout: float = 900.0
    #: How long a session lasts on the server, in seconds.
    session_lifetime: float = 12 * 3600.0
    same_site: SameSite = "Lax"
    secure_cookie: SecureCookie = "auto"


def parse_signin_settings(table: Mapping[str, Any]) -> SignInSettings:
    """Validate a ``[signin]`` table; an unknown key or a bad value names the key."""
    from limits import parse_many

    where = "[signin]"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: expected a table")
    check_keys(where, table, _SIGNIN_KEYS)
    defaults = SignInSettings()
    attempts = text(f"{where}.attempts", table.get("attempts", defaults.attempts))
    try:
        parse_many(attempts)
    except ValueError:
        raise ConfigError(f"{where}.attempts: {attempts!r} is not a rate like '20/minute' or "
                          "'5 per 10 seconds'") from None
    failures = number(f"{where}.max_failures", table.get("max_failures", defaults.max_failures),
                      1, 1000)
    if failures != int(failures):
        raise ConfigError(f"{where}.max_failures: expected a whole number, got {failures!r}")
    return SignInSettings(
        attempts=attempts,
        max_failures=int(failures),
        lockout=positive_duration(f"{where}.lockout", table.get("lockout", defaults.lockout)),
        session_lifetime=positive_duration(f"{where}.session_lifetime",
                                           table.get("session_lifetime", defaults.session_lifetime)),
        same_site=choice(f"{where}.same_site", table.get("same_site", defaults.same_site),  # type: ignore[arg-type]
                         SAME_SITE, "same_site"),
        secure_cookie=choice(f"{where}.secure_cookie",  # type: ignore[arg-type]
                             table.get("secure_cookie", defaults.secure_cookie),
                             SECURE_COOKIE, "secure_cookie"),
    )


#: ``[signin]`` as the city file's section: ``config.section(SIGNIN_SECTION)``.
SIGNIN_SECTION = Section[SignInSettings](
    "signin", ("signin",), lambda tables, _context: parse_signin_settings(tables["signin"]),
    default=SignInSettings(), keys={"signin": _SIGNIN_KEYS})


class SignInRefused(Exception):
    """A sign-in that is not even checked: too many tries from an address, or a locked name.

    ``retry_after`` is how many seconds until a try may succeed.
    """

    def __init__(self, message: str, retry_after: float, reason: Literal["address", "locked",
                                                                          "unavailable"]) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after + 0.999))
        self.reason = reason


class SessionGuard:
    """Rate limits, lockouts and open sessions, in storage every worker of a deployment shares.

    ``storage_uri`` is a Flask-Limiter storage (``memory://`` or ``redis://…``);
    ``key_prefix`` keeps one deployment's keys apart on a shared Redis. The guard is
    usable once :meth:`install` bound it to the Flask app that serves sign-in.
    """

    def __init__(self, settings: SignInSettings | None = None, storage_uri: str = "memory://",
                 key_prefix: str = "citybrain:signin:") -> None:
        from flask_limiter import Limiter
        from flask_limiter.util import get_remote_address

        self.settings = settings or SignInSettings()
        self.storage_uri = storage_uri
        self.key_prefix = key_prefix
        self.limiter: Limiter = Limiter(get_remote_address, storage_uri=storage_uri,
                                        strategy="moving-window", key_prefix=key_prefix)
        #: One bucket per address for every way in (the API and the page's form).
        self.address_limit = self.limiter.shared_limit(self.settings.attempts, scope="signin")

    # ---------------------------------------------------------------- the app
    def install(self, app: Flask) -> None:
        """Bind the limiter to ``app`` and set its session cookie's flags."""
        self.limiter.init_app(app)
        app.config["SESSION_COOKIE_HTTPONLY"] = True
        app.config["SESSION_COOKIE_SAMESITE"] = self.settings.same_site
        app.config["SESSION_COOKIE_SECURE"] = self.settings.secure_cookie == "always"
        if self.settings.secure_cookie == "auto":
            app.session_interface = SecureWhenHttps()

    @property
    def _storage(self) -> Any:
        return self.limiter.storage

    def _key(self, kind: str, name: str, *rest: str) -> str:
        # User names come from the form: hashed, so a key's length never depends on them.
        digest = hashlib.sha256(name.encode("utf-8", "replace")).hexdigest()[:32]
        return ":".join((self.key_prefix + kind, digest, *rest))

    # ---------------------------------------------------------------- sign-in
    def before_attempt(self, name: str) -> None:
        """Count a try from this request's address; refuse when limited or ``name`` is locked.

        Raises :class:`SignInRefused`; the password must not be checked then.
        """
        from flask_limiter.errors import RateLimitExceeded

        try:
            with self.address_limit:
                pass
        except RateLimitExceeded:
            current = self.limiter.current_limit
            # reset_at is a whole second, rounded up: never say longer than the window.
            wait = (min(current.reset_at - time.time(), current.limit.get_expiry())
                    if current is not None else 60.0)
            raise SignInRefused("too many sign-in attempts from this address; try again in "
                                f"{max(1, int(wait + 0.999))} s", wait, "address") from None
        except Exception as exc:  # the storage's own errors (e.g. Redis down): fail closed
            raise self._unavailable(exc) from None
        wait = self.locked_for(name)
        if wait > 0:
            raise SignInRefused(f"too many failed sign-ins for this user; try again in "
                                f"{max(1, int(wait + 0.999))} s", wait, "locked")

    def locked_for(self, name: str) -> float:
        """Seconds until ``name`` may sign in again (0 when it is not locked)."""
        key = self._key("locked", name)
        try:
            if self._storage.get(key) <= 0:
                return 0.0
            return max(1.0, float(self._storage.get_expiry(key)) - time.time())
        except Exception as exc:  # fail closed: a lock that cannot be read holds
            raise self._unavailable(exc) from None

    def record_failure(self, name: str) -> None:
        """A wrong password for ``name``: at ``max_failures`` within ``lockout`` the name is locked."""
        lockout = max(1, int(self.settings.lockout))
        failures = self._storage.incr(self._key("failed", name), lockout)
        if failures >= self.settings.max_failures:
            self._storage.incr(self._key("locked", name), lockout)
            self._storage.clear(self._key("failed", name))
            log.warning("sign-in: a user name is locked for %d s after %d wrong passwords",
                        lockout, failures)

    def record_success(self, name: str) -> None:
        """The right password: the count of failures starts again."""
        self._storage.clear(self._key("failed", name))

    # ---------------------------------------------------------------- sessions
    def open_session(self, name: str) -> str:
        """A new session id for ``name``, valid on the server for ``session_lifetime``."""
        session_id = secrets.token_urlsafe(24)
        self._storage.incr(self._key("session", name, session_id),
                           max(1, int(self.settings.session_lifetime)))
        return session_id

    def session_open(self, name: str, session_id: str) -> bool:
        """True while the session is open (not logged out, not expired)."""
        try:
            return bool(self._storage.get(self._key("session", name, session_id)) > 0)
        except Exception as exc:  # fail closed: nobody is signed in while it cannot be checked
            log.warning("sign-in: sessions cannot be checked (%s: %s)", type(exc).__name__, exc)
            return False

    def close_session(self, name: str, session_id: str) -> None:
        """Revoke a session on the server: its cookie is refused from now on, on every worker."""
        self._storage.clear(self._key("session", name, session_id))

    @staticmethod
    def _unavailable(exc: Exception) -> SignInRefused:
        log.warning("sign-in: the rate-limit storage is unreachable (%s: %s)",
                    type(exc).__name__, exc)
        return SignInRefused("sign-in is unavailable for a moment; try again", 5, "unavailable")


class SecureWhenHttps(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with ``Secure`` whenever the request came over HTTPS.

    Behind a proxy that ends TLS, the proxy must say so (``X-Forwarded-Proto`` with
    werkzeug's ``ProxyFix``), or set ``secure_cookie = "always"``.
    """

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or (
            has_request_context() and request.is_secure)


def serving_workers() -> int:
    """How many worker processes the gunicorn running this process starts (1 outside gunicorn).

    Read with gunicorn's own configuration loader (command line, ``GUNICORN_CMD_ARGS``,
    ``WEB_CONCURRENCY`` and the config file), as the master read it before forking.
    """
    if "gunicorn.arbiter" not in sys.modules:
        return 1
    try:
        from gunicorn.app.wsgiapp import WSGIApplication

        return int(WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").cfg.workers)
    except (Exception, SystemExit) as exc:  # not gunicorn's command line after all
        log.debug("gunicorn's worker count is unknown: %s", exc)
        return 1


__all__ = ["SIGNIN_SECTION", "SecureWhenHttps", "SessionGuard", "SignInRefused", "SignInSettings",
           "parse_signin_settings", "serving_workers"]
