"""The JSON API: one blueprint per concern, one error shape (:mod:`api.errors`).

- :mod:`api.health`: ``/api/health``
- :mod:`api.cells`: ``/api/layers``, ``/api/layers/<id>/cells``, ``/api/cells/<cell>``
- :mod:`api.events`: ``/api/events`` (when the city has an event pipeline)
- :mod:`api.signs`: ``/api/signs``, ``/api/alerts`` (when the city has vital signs)
- :mod:`api.params`, :mod:`api.limits`: parameters parsed into 400s naming them; body limits

Each blueprint is built with what it serves (closures over :class:`services.Services`),
so no route looks a service up by name at request time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, Flask

if TYPE_CHECKING:
    from services import Services


def blueprints(services: Services) -> list[Blueprint]:
    """Every blueprint the app serves for ``services`` (events and signs only when configured)."""
    from api.cells import create_blueprint
    from api.events import create_events_blueprint
    from api.health import create_health_blueprint
    from api.signs import create_signs_blueprint, operator_hooks

    found = [create_health_blueprint(services), create_blueprint(services)]
    if services.events is not None:
        found.append(create_events_blueprint(services.events))
    if services.signs is not None:
        found.append(create_signs_blueprint(services.signs, *operator_hooks(services.auth)))
    return found


def register_api(server: Flask, services: Services) -> None:
    """Mount every API blueprint on the app's Flask server; every ``/api/`` failure is JSON.

    The server also gets the body limits of :mod:`api.limits` (size, JSON depth).
    """
    from api.errors import install_catch_all
    from api.limits import install_limits

    install_catch_all(server)
    install_limits(server)
    for blueprint in blueprints(services):
        server.register_blueprint(blueprint)


__all__ = ["blueprints", "register_api"]
