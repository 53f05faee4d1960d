"""citybrain: one map for the whole city.

``create_app(config)`` builds the Dash app; nothing runs at import. From the
command line::

    python app.py                          # the built-in demo city on 127.0.0.1:8050
    python app.py --config city.toml --host 0.0.0.0 --port 8050

Under gunicorn, ``app:server`` builds the app for the config named by the
``CITYBRAIN_CONFIG`` environment variable (the demo city when unset)::

    gunicorn -w 2 -b 127.0.0.1:8050 app:server
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dash import Dash

from config import city
from config.city import CityConfig, ConfigError
from config.sections import ConfigSchema
from services import CallbackErrors, build

log = logging.getLogger("citybrain")
#: gunicorn's exit code for a worker whose app cannot load: the master then stops.
GUNICORN_APP_LOAD_ERROR = 4


@functools.cache
def config_schema() -> ConfigSchema:
    """What the features contribute to reading a city file: the one place that lists it.

    The layers and adapters that sources and tour steps are checked against, and
    every feature-owned table (in parse order). A new section is one line here.
    """
    from data import adapter_names, get_adapter_class
    from layers import LAYERS
    from ops.events.settings import EVENTS_SECTION, USERS_SECTION
    from ops.sessions import SIGNIN_SECTION
    from ops.signs.settings import SIGNS_SECTION
    from render.privacy import PRIVACY_SECTION

    return ConfigSchema(layers=LAYERS, adapter_names=adapter_names, adapter=get_adapter_class,
                        sections=(EVENTS_SECTION, USERS_SECTION, SIGNIN_SECTION, SIGNS_SECTION,
                                  PRIVACY_SECTION))


def load_config(path: str | os.PathLike[str] | None = None) -> CityConfig:
    """Load and validate a city config (the demo city without a path); see config.city."""
    return city.load_config(path, schema=config_schema())


def parse_config(raw: Mapping[str, Any], base_dir: Path, path: Path | None = None) -> CityConfig:
    """Validate a parsed TOML document with the app's schema; see config.city.parse_config."""
    return city.parse_config(raw, base_dir, path, schema=config_schema())


def check_files(config: CityConfig) -> CityConfig:
    """``config`` once its boundary and source files exist with their fields; see
    config.city.check_files (a ConfigError naming the key otherwise)."""
    city.check_files(config, schema=config_schema())
    return config


def on_callback_error(error: Exception, errors: CallbackErrors | None = None) -> None:
    """Log a failed callback and leave the page as it was.

    A wall display must never show an error: the output keeps its last good value
    (``None`` here means no update), the error goes to the log and is counted in
    ``errors`` (the app's, served in ``/api/health``).
    """
    log.error("callback failed: %s: %s", type(error).__name__, error, exc_info=error)
    if errors is not None:
        errors.record(error)


def create_app(config: CityConfig | None = None, start_ingest: bool = True) -> Dash:
    """Build the app for a city: its services, the page, the callbacks and the JSON API.

    The city's data, ingest engine, event pipeline and vital signs are one
    :class:`services.Services` (see :func:`services.build`, which also starts ingest
    unless ``start_ingest`` is False); every callback module and API blueprint
    receives it. It stays reachable as ``app.services``.
    """
    from api import register_api
    from callbacks import register_all
    from callbacks.layout import build_layout
    from store.cache import init_cache

    config = config or load_config()
    services = build(config, start_ingest)
    app = Dash(
        __name__,
        title="城市大脑 citybrain",
        update_title=None,  # type: ignore[arg-type]  # None is documented: no "Updating…"
        serve_locally=True,
        compress=True,  # gzip: map figures are JSON and shrink several-fold
        assets_folder=os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets"),
        suppress_callback_exceptions=False,
        on_error=functools.partial(on_callback_error, errors=services.callback_errors),
    )
    app.services = services  # type: ignore[attr-defined]  # for tests, bench and scripts
    if services.secret_key is not None:
        app.server.secret_key = services.secret_key
    init_cache(app.server, config.cache)
    register_api(app.server, services)
    app.layout = build_layout(config, services.store)
    register_all(app, services)
    return app


def __getattr__(name: str) -> Any:
    """``app:server`` for gunicorn, built on first access (not at import)."""
    if name == "server":
        try:
            return create_app(check_files(load_config(os.environ.get("CITYBRAIN_CONFIG")))).server
        except ConfigError as exc:
            # One line, and gunicorn's "App failed to load" exit code: the server stops
            # instead of restarting workers that cannot start.
            print(f"citybrain: {exc}", file=sys.stderr, flush=True)
            raise SystemExit(GUNICORN_APP_LOAD_ERROR) from None
    raise AttributeError(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="citybrain", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="city config (TOML); default: the demo city")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8050)
    parser.add_argument("--debug", action="store_true", help="Dash dev tools (never on a wall)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = check_files(load_config(args.config))
        app = create_app(config)  # some mistakes show only when the city is built
    except ConfigError as exc:
        print(f"citybrain: {exc}", file=sys.stderr)
        return 2
    log.info("serving %s on http://%s:%d/", config.city.name, args.host, args.port)
    app.run(host=args.host, port=args.port, debug=args.debug)
    return 0


if __name__ == "__main__":
    sys.exit(main())
