"""The citybrain app on Dash's FastAPI backend under uvicorn, with or without websocket callbacks.

Bench only. Dash 4.4's ``websocket_callbacks=True`` needs a backend with websocket
support — FastAPI (``dash[fastapi]``: fastapi + uvicorn[standard]) or Quart — and the
app's default Flask backend has none. ``app.create_app`` cannot simply be given other
Dash arguments: it binds Flask-only parts to ``app.server`` (Flask-Caching, the
``/api`` blueprints, the session key), so this wrapper assembles the same page and
callbacks on the same :func:`services.build` (ingest engine, event pipeline, vital
signs) without the Flask HTTP APIs and the cache (nothing the map, the panels or a
tick needs)::

    .venv/bin/python bench/ws_app.py --port 8061 --transport websocket
    .venv/bin/python bench/ws_app.py --port 8062 --transport http      # same server, polling
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def create_fastapi_app(config_path: str | None, websocket: bool) -> object:
    """The app's layout, callbacks, ingest engine and operations services on a FastAPI Dash app."""
    import functools

    from dash import Dash

    from app import load_config, on_callback_error
    from callbacks import register_all
    from callbacks.layout import build_layout
    from services import build

    config = load_config(config_path)
    # The event pipeline and vital signs run as in create_app (their work after each
    # ingest round is part of the server's load); their Flask HTTP APIs are not mounted.
    services = build(config, start_ingest=True)
    app = Dash(
        "app",
        backend="fastapi",
        websocket_callbacks=websocket,
        title="城市大脑 citybrain",
        update_title=None,
        serve_locally=True,
        compress=True,
        assets_folder=os.path.join(REPO, "assets"),
        suppress_callback_exceptions=False,
        on_error=functools.partial(on_callback_error, errors=services.callback_errors),
    )
    app.layout = build_layout(config, services.store)
    register_all(app, services)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="city config (TOML); default: the live demo city")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8061)
    parser.add_argument("--transport", choices=("websocket", "http"), default="websocket")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import uvicorn

    app = create_fastapi_app(args.config, websocket=args.transport == "websocket")
    uvicorn.run(app.server, host=args.host, port=args.port, log_level="warning")  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
