"""The app factory: importing it builds nothing, so only `src.main` reads the environment."""

import os
import subprocess
import sys

from src.config import PROJECT_ROOT


def python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )


def test_importing_the_factory_ignores_a_broken_environment() -> None:
    """With PORT=eighty, the schema export and the test fixtures still import (they pass
    their own settings); only the served app refuses, naming the variable."""
    ok = python("import scripts.export_schema, src.app, tests.conftest", PORT="eighty")
    assert ok.returncode == 0, ok.stderr
    served = python("import src.main", PORT="eighty")
    assert served.returncode != 0 and "invalid setting PORT" in served.stderr
