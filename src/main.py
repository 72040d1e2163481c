"""The ASGI entry point: `uvicorn src.main:app`.

Importing this module builds the app from the environment and `.env`, shows the service's
log lines beside uvicorn's, and tunes the garbage collector for serving (`tune_gc`);
everything else (tests, scripts) imports the factory from `src.app`, which has no side
effects.

Served by plain uvicorn, nothing checks the settings before this import does (`make run`
checks them, and provides DATABASE_URL and JWT_SECRET). A missing or malformed setting ends
the import with SystemExit and one line naming it: uvicorn prints a traceback for any other
exception, and this line alone for SystemExit. A server without JWT_SECRET says at start
that it refuses every write.
"""

import logging

from src.compat import quiet_import_warnings

quiet_import_warnings()  # before lihil is imported

from src.app import create_app, tune_gc
from src.config import ConfigError, Settings, load_settings
from src.logs import show_logs

log = logging.getLogger("catalog")


def served_settings() -> Settings:
    """The settings, or SystemExit with one line saying what is wrong and what to do."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    if not settings.DATABASE_URL:
        raise SystemExit(
            "error: DATABASE_URL is not set: set it to your PostgreSQL's URL "
            "(postgresql://user:password@host:5432/dbname), or serve with `make run`, which "
            "starts an embedded PostgreSQL"
        )
    return settings


settings = served_settings()
show_logs(settings.LOG_LEVEL, settings.LOG_FORMAT)
if not settings.JWT_SECRET:
    log.warning(
        "JWT_SECRET is not set: this server refuses every catalog write (401) until it is "
        "set; reads and WebSockets work"
    )
app = create_app(settings)
tune_gc()
