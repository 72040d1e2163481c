"""Write the OpenAPI and AsyncAPI documents to docs/, offline (no server, no database).

    python -m scripts.export_schema [--check]

With --check, write nothing and exit 1 if the committed files differ from the code's.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from src.compat import quiet_import_warnings

quiet_import_warnings()  # before lihil is imported

from src.app import contract_documents
from src.config import PROJECT_ROOT, load_settings

DOCS = PROJECT_ROOT / "docs"


def documents() -> dict[Path, Any]:
    """Each document file and its content, from default settings."""
    built = contract_documents(load_settings(environ={}, env_file=None))
    return {DOCS / f"{name}.json": document for name, document in built.items()}


def render(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for path, document in documents().items():
        text = render(document)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.relative_to(PROJECT_ROOT))
        else:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(PROJECT_ROOT)}")
    if stale:
        print(f"out of date: {', '.join(map(str, stale))}; run `make schema`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
