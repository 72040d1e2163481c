"""The real-time catalog service (`uvicorn src.main:app`). Importing it does nothing."""
