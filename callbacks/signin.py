"""Operator sign-in: the form, who is signed in, and who may change things.

Who may act is decided on the server, on every request, from the Flask session
(:meth:`ops.auth.Auth.user_for_request`): the ``SESSION_USER`` store in the browser
only says which name to show. A forged callback request from a viewer is refused
like one from nobody.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dash import Dash, Input, Output, State, ctx, dcc, html, no_update

from callbacks import ids
from callbacks.common import data_attrs, label
from config.i18n import t
from ops.events.model import CHANGE_ROLES, SYSTEM
from ops.sessions import SignInRefused

if TYPE_CHECKING:
    from ops.auth import Auth
    from ops.events.settings import User
    from services import Services


# ------------------------------------------------------------------ who is who
def may_change(user: User | None) -> bool:
    """True for a signed-in user whose role may change events and acknowledge alerts."""
    return user is not None and user.role in CHANGE_ROLES and user.role != SYSTEM


def session_user(auth: Auth | None) -> User | None:
    """The user signed in in this browser (Flask session), judged on the server."""
    from flask import has_request_context

    if auth is None or not has_request_context():
        return None
    return auth.user_for_request()


def signed_in(services: Services) -> User | None:
    """Who is signed in, from the session, on every request (never from the page)."""
    return session_user(services.auth)


def session_state(user: User | None, failed: bool = False,
                  retry_after: int | None = None) -> dict[str, Any]:
    """What the ``SESSION_USER`` store holds: the name and role to show, or a failed try.

    ``retry_after`` (seconds) is set when the try was refused unchecked (too many tries).
    """
    state: dict[str, Any] = {"user": {"name": user.name, "role": user.role} if user else None,
                             "failed": failed}
    if retry_after is not None:
        state["retry_after"] = retry_after
    return state


def sign_in(auth: Auth, name: str | None, password: str | None) -> dict[str, Any]:
    """Try a name and password (limited, see :meth:`ops.auth.Auth.attempt`); on success
    the Flask session remembers the user."""
    try:
        user = auth.attempt((name or "").strip(), password or "")
    except SignInRefused as refused:
        return session_state(None, failed=True, retry_after=refused.retry_after)
    if user is None:
        return session_state(None, failed=True)
    auth.login(user)
    return session_state(user)


def sign_out(auth: Auth) -> dict[str, Any]:
    auth.logout()
    return session_state(None)


def signed_in_text(name: str | None, role: str | None, language: str) -> str:
    if not name:
        return ""
    return t("login.as", language, name=name, role=t(f"role.{role}", language))


# ---------------------------------------------------------------------- layout
def stores() -> list[Any]:
    return [dcc.Store(id=ids.SESSION_USER, data=None)]


def login_form(language: str) -> html.Div:
    """Sign-in (name + password) and sign-out; the callback shows one or the other."""
    return html.Div(className="ops-login", children=[
        html.Div(id=ids.LOGIN_STATUS, className="ops-login-status"),
        html.Div(id=ids.LOGIN_FORM, className="ops-login-fields", children=[
            dcc.Input(id=ids.LOGIN_NAME, type="text", placeholder=t("login.name", language),
                      autoComplete="username", className="ops-input", n_submit=0),
            dcc.Input(id=ids.LOGIN_PASSWORD, type="password",
                      placeholder=t("login.password", language),
                      autoComplete="current-password", className="ops-input", n_submit=0),
            html.Button(label("login.submit", language), id=ids.LOGIN_BUTTON, n_clicks=0,
                        className="cb-button ops-login-button"),
        ]),
        html.Button(label("login.logout", language), id=ids.LOGOUT_BUTTON, n_clicks=0,
                    className="cb-button ops-logout ops-hidden"),
    ])


def session_view(session: dict[str, Any] | None, language: str, has_events: bool,
                 has_users: bool = True) -> tuple[Any, ...]:
    """Status line, form and logout classes and placeholders for what the store holds.

    A city with events but no ``[[users]]`` shows no form: the status says how to add
    users, as the API's 403 does.
    """
    user = (session or {}).get("user")
    hidden = "" if has_events else "ops-hidden"
    if has_events and not has_users:
        status: Any = html.Span(t("login.no_users", language), id="no-users",
                                className="ops-bad")
        return (status, "ops-login-fields ops-hidden", "cb-button ops-logout ops-hidden",
                t("login.name", language), t("login.password", language))
    if user:
        status = html.Span(signed_in_text(user["name"], user["role"], language),
                                id="signed-in-as", **data_attrs({"data-role": user["role"]}))
        form, logout = "ops-login-fields ops-hidden", "cb-button ops-logout"
    else:
        retry_after = (session or {}).get("retry_after")
        if retry_after:
            status = html.Span(t("login.refused", language, seconds=retry_after),
                               className="ops-bad")
        elif (session or {}).get("failed"):
            status = html.Span(t("login.failed", language), className="ops-bad")
        else:
            status = t("login.title", language)
        form, logout = f"ops-login-fields {hidden}".strip(), "cb-button ops-logout ops-hidden"
    return (status, form, logout, t("login.name", language), t("login.password", language))


# ------------------------------------------------------------------- callbacks
def register(app: Dash, services: Services) -> None:
    @app.callback(
        Output(ids.SESSION_USER, "data"),
        Output(ids.LOGIN_PASSWORD, "value"),
        Input(ids.LOGIN_BUTTON, "n_clicks"),
        Input(ids.LOGIN_PASSWORD, "n_submit"),
        Input(ids.LOGOUT_BUTTON, "n_clicks"),
        State(ids.LOGIN_NAME, "value"),
        State(ids.LOGIN_PASSWORD, "value"),
    )
    def on_sign_in(_login: int, _submit: int, _logout: int, name: str | None,
                   password: str | None) -> tuple[Any, Any]:
        """Sign in (into the Flask session), sign out, or on page load say who is signed in."""
        auth = services.auth
        if services.events is None or auth is None:
            return None, no_update
        if ctx.triggered_id in (ids.LOGIN_BUTTON, ids.LOGIN_PASSWORD):
            return sign_in(auth, name, password), ""
        if ctx.triggered_id == ids.LOGOUT_BUTTON:
            return sign_out(auth), ""
        return session_state(signed_in(services)), no_update

    @app.callback(
        Output(ids.LOGIN_STATUS, "children"),
        Output(ids.LOGIN_FORM, "className"),
        Output(ids.LOGOUT_BUTTON, "className"),
        Output(ids.LOGIN_NAME, "placeholder"),
        Output(ids.LOGIN_PASSWORD, "placeholder"),
        Input(ids.SESSION_USER, "data"),
        Input(ids.LANGUAGE, "data"),
    )
    def show_session(session: dict[str, Any] | None, language: str) -> tuple[Any, ...]:
        return session_view(session, language, has_events=services.events is not None,
                            has_users=services.auth is not None and bool(services.auth.users))
