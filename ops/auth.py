"""Who may do what with events: users and roles from config, secrets from the environment.

Roles: ``operator`` may change events; ``viewer`` and ``exhibition`` (the wall in
an exhibition hall) may only read. A user proves who they are with a password,
checked against a werkzeug ``generate_password_hash`` string held in the
environment variable the config names, or with an API token held the same way
(sent as ``Authorization: Bearer <token>``). A browser that logged in keeps the
user's name in the Flask session. Routes are guarded by
:func:`api.auth.require_role`, which asks an :class:`Auth` who is calling.

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

if TYPE_CHECKING:  # ops.events imports this module: at run time the import would be circular
    from ops.events.settings import User

log = logging.getLogger(__name__)

SESSION_KEY = "citybrain_user"
#: Shorter tokens are refused: a guessable token is worse than none.
MIN_TOKEN_LENGTH = 16


@functools.lru_cache(maxsize=1)
def _decoy_hash() -> str:
    from werkzeug.security import generate_password_hash

    return generate_password_hash("citybrain: not a user")


class Auth:
    """The configured users; secrets are looked up in ``environ`` on each use (no restart)."""

    def __init__(self, users: Sequence[User], environ: Mapping[str, str] | None = None) -> None:
        self.users = {u.name: u for u in users}
        self._environ = environ

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
        name = session.get(SESSION_KEY)
        return self.users.get(name) if isinstance(name, str) else None

    def login(self, user: User) -> None:
        """Remember ``user`` in the Flask session (the app needs a ``SECRET_KEY``)."""
        from flask import session

        session.clear()  # a fresh session on login: no fixation of an earlier one
        session[SESSION_KEY] = user.name

    def logout(self) -> None:
        from flask import session

        session.pop(SESSION_KEY, None)


__all__ = ["Auth", "MIN_TOKEN_LENGTH", "SESSION_KEY"]
