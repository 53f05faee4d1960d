"""Who may do what with events: users and roles from config, secrets from the environment.

Roles: ``operator`` may change events; ``viewer`` and ``exhibition`` (the wall in
an exhibition hall) may only read. A user proves who they are with a password,
checked against a werkzeug ``generate_password_hash`` string held in the
environment variable the config names, or with an API token held the same way
(sent as ``Authorization: Bearer <token>``). A browser that logged in keeps the
user's name and a session id in the Flask session; the id is open on the server
(:class:`ops.sessions.SessionGuard`) until logout or its lifetime ends, so a cookie
captured before logout is refused after it. Sign-in tries go through
:meth:`Auth.attempt`: limited per client address, locked per user name after
repeated failures. Routes are guarded by :func:`api.auth.require_role`, which asks
an :class:`Auth` who is calling.

Example::

    auth = Auth(parse_users([{"name": "ops", "role": "operator",
                              "token_env": "CITYBRAIN_OPS_TOKEN"}]))
    auth.user_for_token(os.environ["CITYBRAIN_OPS_TOKEN"]).role   # "operator"
"""

from __future__ import annotations

import functools
import hmac
import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ops.sessions import SessionGuard

if TYPE_CHECKING:  # ops.events imports this module: at run time the import would be circular
    from ops.events.settings import User

log = logging.getLogger(__name__)

SESSION_KEY = "citybrain_user"
#: The server-side session id in the Flask session, next to the user's name.
SESSION_ID_KEY = "citybrain_sid"
#: Shorter tokens are refused: a guessable token is worse than none.
MIN_TOKEN_LENGTH = 16


@functools.lru_cache(maxsize=1)
def _decoy_hash() -> str:
    from werkzeug.security import generate_password_hash

    return generate_password_hash("citybrain: not a user")


class Auth:
    """The configured users; secrets are looked up in ``environ`` on each use (no restart).

    ``guard`` holds the sign-in limits and the open sessions (one in this process by
    default; :func:`services.build` gives it the deployment's shared storage).
    """

    def __init__(self, users: Sequence[User], environ: Mapping[str, str] | None = None,
                 guard: SessionGuard | None = None) -> None:
        self.users = {u.name: u for u in users}
        self._environ = environ
        self.guard = guard or SessionGuard()

    @property
    def environ(self) -> Mapping[str, str]:
        return os.environ if self._environ is None else self._environ

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if ``password`` matches their hash, else None."""
        from werkzeug.security import check_password_hash

        user = self.users.get(name)
        stored = self.environ.get(user.password_hash_env or "") if user else None
        if user is None or not stored:
            check_password_hash(_decoy_hash(), password)  # same cost whether or not the user exists
            return None
        try:
            return user if check_password_hash(stored, password) else None
        except (ValueError, TypeError):
            log.warning("user %r: %s does not hold a werkzeug password hash",
                        user.name, user.password_hash_env)
            return None

    def attempt(self, name: str, password: str) -> User | None:
        """A sign-in try from the current request: the user, None for a wrong password.

        Raises :class:`ops.sessions.SignInRefused` without checking the password when
        the client's address has tried too often or the name is locked; a wrong
        password counts towards the name's lockout, the right one resets it.
        """
        self.guard.before_attempt(name)
        user = self.authenticate(name, password)
        if user is None:
            self.guard.record_failure(name)
        else:
            self.guard.record_success(name)
        return user

    def user_for_token(self, token: str) -> User | None:
        """The user whose API token this is, else None (compared in constant time)."""
        if not token:
            return None
        found = None
        for user in self.users.values():
            expected = self.environ.get(user.token_env) if user.token_env else None
            if not expected:
                continue
            if len(expected) < MIN_TOKEN_LENGTH:
                log.warning("user %r: token in %s is shorter than %d characters; refused",
                            user.name, user.token_env, MIN_TOKEN_LENGTH)
                continue
            if hmac.compare_digest(token.encode(), expected.encode()):
                found = user
        return found

    def user_for_request(self) -> User | None:
        """The user of the current Flask request: bearer token first, then the session.

        A request that sends an ``Authorization`` header is judged on it alone; a wrong
        token never falls back to a browser session.
        """
        from flask import request, session

        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            return self.user_for_token(token.strip()) if scheme.lower() == "bearer" else None
        name, session_id = session.get(SESSION_KEY), session.get(SESSION_ID_KEY)
        if not isinstance(name, str) or not isinstance(session_id, str):
            return None
        if not self.guard.session_open(name, session_id):
            return None  # logged out or expired on the server: the cookie alone is not enough
        return self.users.get(name)

    def login(self, user: User) -> None:
        """Remember ``user`` in the Flask session (the app needs a ``SECRET_KEY``).

        A new session id is opened on the server; the cookie carries it.
        """
        from flask import session

        session.clear()  # a fresh session on login: no fixation of an earlier one
        session[SESSION_KEY] = user.name
        session[SESSION_ID_KEY] = self.guard.open_session(user.name)

    def logout(self) -> None:
        """Close this browser's session on the server and forget it in the cookie."""
        from flask import session

        name, session_id = session.get(SESSION_KEY), session.get(SESSION_ID_KEY)
        if isinstance(name, str) and isinstance(session_id, str):
            self.guard.close_session(name, session_id)
        session.clear()


__all__ = ["Auth", "MIN_TOKEN_LENGTH", "SESSION_ID_KEY", "SESSION_KEY"]
