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
import logging
import os
import sys
from typing import Any

from dash import Dash

from config.city import CityConfig, ConfigError, load_config

log = logging.getLogger("citybrain")


def on_callback_error(error: Exception) -> None:
    """Log a failed callback and leave the page as it was.

    A wall display must never show an error: the output keeps its last good value
    (``None`` here means no update), the error goes to the log and is counted in
    ``/api/health``.
    """
    from flask import current_app

    log.error("callback failed: %s: %s", type(error).__name__, error, exc_info=error)
    try:
        counts = current_app.extensions.setdefault("citybrain_callback_errors", {"count": 0})
        counts["count"] += 1
        counts["last"] = f"{type(error).__name__}: {error}"
    except RuntimeError:  # outside an app context
        pass


def create_app(config: CityConfig | None = None, start_ingest: bool = True) -> Dash:
    """Build the app for a city: load its data, lay out the page, register callbacks.

    With streaming sources, the ingest engine starts (one per process) unless
    ``start_ingest`` is False; it is at ``app.server.extensions["citybrain_ingest"]``.
    When the config shares live state through Redis (see store.replication), only the
    elected process ingests and the others replicate its changes; with
    ``start_ingest`` False this process only follows.
    """
    from api.cells import register_api
    from callbacks import register_all
    from callbacks.layout import build_layout
    from store.cache import init_cache
    from store.city import CityData
    from store.ingest import IngestEngine
    from store.replication import open_shared

    config = config or load_config()
    shared = open_shared(config)  # None unless several workers share the live state
    data = shared.open_city() if shared is not None else CityData.load(config)
    app = Dash(
        __name__,
        title="城市大脑 citybrain",
        update_title=None,  # type: ignore[arg-type]  # None is documented: no "Updating…"
        serve_locally=True,
        compress=True,  # gzip: map figures are JSON and shrink several-fold
        assets_folder=os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets"),
        suppress_callback_exceptions=False,
        on_error=on_callback_error,
    )
    init_cache(app.server, config.cache)
    register_api(app.server, data)
    app.layout = build_layout(config, data)
    register_all(app, data)
    engine = IngestEngine(data)
    app.server.extensions["citybrain_ingest"] = engine
    pipeline = attach_event_pipeline(app, data, engine) if config.events is not None else None
    if config.ops is not None:
        attach_vital_signs(app, data, engine, pipeline)
    if shared is not None:
        app.server.extensions["citybrain_shared"] = shared
        shared.start(engine, lead=start_ingest)
    elif start_ingest and config.sources:
        # Also for file-only cities: changed files are re-read every [live] reload
        # seconds, and vital signs and alerts are evaluated with no page open.
        engine.start()
    return app


def attach_event_pipeline(app: Dash, data: Any, engine: Any) -> Any:
    """Feed every government ``requests`` source into the event pipeline and serve its API.

    Intake runs now and after every ingest round that brought new data; supervision
    (overdue → escalation) at most once a minute. Sessions need ``CITYBRAIN_SECRET_KEY``.
    """
    import secrets
    import time as _time

    from api.events import register_events_api
    from ops.events.pipeline import EventPipeline

    pipeline = EventPipeline(data.config.events, data.config.users)
    pipeline.clock = lambda: data.clock.now().to_pydatetime()  # SLAs run on city time
    secret = os.environ.get("CITYBRAIN_SECRET_KEY")
    if not secret:
        log.warning("CITYBRAIN_SECRET_KEY is not set: operator sign-in lasts only as long "
                    "as this process")
        secret = secrets.token_hex(32)
    app.server.secret_key = secret
    register_events_api(app.server, pipeline)
    app.server.extensions["citybrain_events"] = pipeline
    pipeline.ingest_city(data)
    pipeline.supervise()
    last_supervised = [_time.monotonic()]

    def after_round(changed: bool) -> None:
        if changed:
            pipeline.ingest_city(data)
        if _time.monotonic() - last_supervised[0] >= 60:
            last_supervised[0] = _time.monotonic()
            pipeline.supervise()

    engine.after_round.append(after_round)
    return pipeline


def attach_vital_signs(app: Dash, data: Any, engine: Any, pipeline: Any) -> Any:
    """Evaluate indicators and warning rules after ingest rounds and serve their API.

    Alerts are evaluated whether or not a page is open; acknowledging one needs the
    operator role (when the city has users), like changing an event.
    """
    import time as _time

    from ops.signs.service import VitalSigns, create_signs_blueprint

    signs = VitalSigns.from_config(data, data.config.ops)

    def current_user() -> Any:
        return None if pipeline is None else pipeline.auth.user_for_request()

    def authorize() -> bool:
        user = current_user()
        return user is not None and user.role == "operator"

    def actor() -> str:
        user = current_user()
        return "anonymous" if user is None else str(user.name)

    app.server.register_blueprint(create_signs_blueprint(signs, authorize, actor))
    app.server.extensions["citybrain_signs"] = signs
    last = [0.0]

    def after_round(_changed: bool) -> None:
        if _time.monotonic() - last[0] >= data.config.live.refresh:
            last[0] = _time.monotonic()
            signs.refresh()

    engine.after_round.append(after_round)
    return signs


def __getattr__(name: str) -> Any:
    """``app:server`` for gunicorn, built on first access (not at import)."""
    if name == "server":
        return create_app(load_config(os.environ.get("CITYBRAIN_CONFIG"))).server
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
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"citybrain: {exc}", file=sys.stderr)
        return 2
    app = create_app(config)
    log.info("serving %s on http://%s:%d/", config.city.name, args.host, args.port)
    app.run(host=args.host, port=args.port, debug=args.debug)
    return 0


if __name__ == "__main__":
    sys.exit(main())
