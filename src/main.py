"""The ASGI entry point: `uvicorn src.main:app`.

Importing this module builds the app from the environment and `.env`, and tunes the
garbage collector for serving (`tune_gc`); everything else (tests, scripts) imports the
factory from `src.app`, which has no side effects.
"""

from src.app import create_app, tune_gc

app = create_app()
tune_gc()
