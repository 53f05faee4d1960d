"""Role checks for API routes: who is calling is asked of the app's :class:`ops.auth.Auth`.

The :class:`~ops.auth.Auth` is given when the blueprint is built (it comes from the
app's :class:`services.Services`), never looked up by name at request time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from api.errors import ApiError
from config.i18n import t
from ops.auth import Auth

F = TypeVar("F", bound=Callable[..., Any])


def no_users() -> ApiError:
    """The answer to anyone when the city configures no users: a JSON 403 saying how to add them."""
    return ApiError(403, t("login.no_users", "en"), reason="no_users")


def require_role(auth: Auth | None, *roles: str) -> Callable[[F], F]:
    """Flask view decorator: 401 without a known user, 403 when their role is not in ``roles``.

    The user is put in ``flask.g.citybrain_user`` for the view. A city without
    ``[[users]]`` lets nobody in and says so: 403 :func:`no_users` (not a 401, which
    would ask for credentials that cannot exist). The answers are :class:`ApiError`,
    so the blueprint must have :func:`api.errors.install` on it.

    >>> @bp.post("/thing")                      # doctest: +SKIP
    ... @require_role(auth, "operator")
    ... def change_thing(): ...
    """
    allowed = frozenset(roles)

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            from flask import g

            if auth is None or not auth.users:
                raise no_users()
            user = auth.user_for_request()
            if user is None:
                raise ApiError(401, "authentication required: send 'Authorization: Bearer "
                                    "<token>' or log in",
                               headers={"WWW-Authenticate": 'Bearer realm="citybrain"'})
            if user.role not in allowed:
                raise ApiError(403, f"role {user.role!r} may not do this; "
                                    f"allowed roles: {', '.join(sorted(allowed))}")
            g.citybrain_user = user
            return view(*args, **kwargs)

        return cast(F, wrapped)

    return decorator


__all__ = ["no_users", "require_role"]
