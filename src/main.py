"""The ASGI entry point: `uvicorn src.main:app`.

Importing this module builds the app from the environment and `.env`, shows the service's
log lines beside uvicorn's, and tunes the garbage collector for serving (`tune_gc`);
everything else (tests, scripts) imports the factory from `src.app`, which has no side
effects.
"""

from src.compat import quiet_import_warnings

quiet_import_warnings()  # before lihil is imported

from src.app import create_app, tune_gc
from src.config import load_settings
from src.logs import show_logs

settings = load_settings()
show_logs(settings.LOG_LEVEL, settings.LOG_FORMAT)
app = create_app(settings)
tune_gc()
